// The storegw command line: one binary, one subcommand per job. Each Add*
// registers a subcommand on `app`; its callback runs the job and stores the
// process exit code in *exit_code.
#pragma once

#include <CLI/CLI.hpp>

namespace storegw::gateway {

// Process exit codes of every subcommand.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;  // the job failed; stderr says why
inline constexpr int kExitUsage = 2;    // unknown subcommand or flag, bad flag value

void AddVersionCommand(CLI::App& app, int* exit_code);
void AddRunCommand(CLI::App& app, int* exit_code);
void AddConfigCommand(CLI::App& app, int* exit_code);
void AddJournalCommand(CLI::App& app, int* exit_code);
void AddSimulateCommand(CLI::App& app, int* exit_code);
// `status`, `alerts`, `stock` (cli_status.cc): exit 0 healthy, 1 degraded,
// 2 down; see that file for the rules.
void AddStatusCommands(CLI::App& app, int* exit_code);

}  // namespace storegw::gateway
