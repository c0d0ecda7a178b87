// storegw: the store-and-forward gateway's one binary. main only parses the
// command line; each subcommand lives in its own cli_*.cc.
#include <cstdio>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include "storegw/cli/cli.h"
#include "version.h"

int main(int argc, char** argv) {
  using namespace storegw::gateway;
  CLI::App app{"storegw: store-and-forward gateway for retail stores", "storegw"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("storegw ") + kVersion);
  int exit_code = kExitOk;
  AddRunCommand(app, &exit_code);
  AddConfigCommand(app, &exit_code);
  AddJournalCommand(app, &exit_code);
  AddSimulateCommand(app, &exit_code);
  AddStatusCommands(app, &exit_code);
  AddVersionCommand(app, &exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version are "errors" with exit code 0.
    if (e.get_exit_code() == 0) return app.exit(e);
    if (!ReportUnknownCommand(app, std::vector<std::string>(argv + 1, argv + argc), stderr)) {
      app.exit(e);
    }
    return kExitUsage;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "storegw: internal error: %s\n", e.what());
    return kExitFailure;
  }
  return exit_code;
}
