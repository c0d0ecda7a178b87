// storegw-hq: the head-office end of storegw's wire protocol. main only
// parses the command line; each subcommand lives in its own file.
#include <cstdio>
#include <exception>
#include <string>

#include "storegw/hq/app/cli.h"
#include "version.h"

int main(int argc, char** argv) {
  using namespace storegw::hq;
  CLI::App app{
      "storegw-hq: receives the stores' events at head office, stores them once in "
      "PostgreSQL, shows the fleet, publishes stock and prices to stores",
      "storegw-hq"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("storegw-hq ") + storegw::gateway::kVersion);
  int exit_code = kExitOk;
  AddRunCommand(app, &exit_code);
  AddStatusCommand(app, &exit_code);
  AddPublishCommand(app, &exit_code);
  AddConfigCommand(app, &exit_code);
  AddVersionCommand(app, &exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version are "errors" with exit code 0.
    if (e.get_exit_code() == 0) return app.exit(e);
    app.exit(e);
    return kExitUsage;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "storegw-hq: internal error: %s\n", e.what());
    return kExitFailure;
  }
  return exit_code;
}
