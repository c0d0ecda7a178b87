// The storegw command line: one binary, one subcommand per job. Each Add*
// registers a subcommand on `app`; its callback runs the job and stores the
// process exit code in *exit_code.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "storegw/config/config.h"

namespace storegw::gateway {

// Process exit codes of every subcommand.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;  // the job failed; stderr says why
inline constexpr int kExitUsage = 2;    // unknown subcommand or flag, bad flag value

void AddVersionCommand(CLI::App& app, int* exit_code);
void AddRunCommand(CLI::App& app, int* exit_code);
void AddConfigCommand(CLI::App& app, int* exit_code);
// What `storegw config check --config PATH [--strict]` does, with the
// retired keys of `options` (the binary passes {}: RetiredConfigKeys()):
// warnings and problems to `err`, the effective config to `out`; returns
// the exit code (0 valid, 1 not valid, or warnings with `strict`).
int CheckConfigCommand(const std::string& path, bool strict, const ConfigParseOptions& options,
                       std::FILE* out, std::FILE* err);
void AddJournalCommand(CLI::App& app, int* exit_code);
void AddSimulateCommand(CLI::App& app, int* exit_code);
// `status`, `alerts`, `stock` (cli_status.cc): exit 0 healthy, 1 degraded,
// 2 down; see that file for the rules.
void AddStatusCommands(CLI::App& app, int* exit_code);

// After a failed parse: when `args` (argv without the program) name a
// command that does not exist where one is required ("storegw frobnicate",
// "storegw journal rewrite"), prints "storegw: unknown command 'frobnicate'"
// and the commands there are to `out`, and returns true (exit kExitUsage).
// False when the mistake is something else (a flag, a positional): CLI11's
// own message says it better.
bool ReportUnknownCommand(const CLI::App& app, const std::vector<std::string>& args,
                          std::FILE* out);

}  // namespace storegw::gateway
