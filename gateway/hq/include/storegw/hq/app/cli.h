// The storegw-hq command line: one subcommand per job (main.cc wires them).
// Each Add* registers a subcommand on `app`; its callback does the job and
// stores the process exit code in *exit_code.
#pragma once

#include <CLI/CLI.hpp>

namespace storegw::hq {

// Exit codes of every subcommand. `status` also uses kExitFailure for "a
// gateway is offline longer than --max-offline" and kExitUsage for "cannot
// tell" (storegw-hq not answering, its database not either), like
// `storegw status`.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;  // the job failed; stderr says why
inline constexpr int kExitUsage = 2;    // unknown subcommand or flag, bad flag value

void AddRunCommand(CLI::App& app, int* exit_code);      // run.cc
void AddStatusCommand(CLI::App& app, int* exit_code);   // cmd_status.cc
void AddPublishCommand(CLI::App& app, int* exit_code);  // cmd_publish.cc
void AddConfigCommand(CLI::App& app, int* exit_code);   // cmd_config.cc
void AddVersionCommand(CLI::App& app, int* exit_code);  // cmd_config.cc

}  // namespace storegw::hq
