#include <cstdio>

#include "storegw/cli/cli.h"
#include "version.h"

namespace storegw::gateway {

void AddVersionCommand(CLI::App& app, int* exit_code) {
  auto* cmd = app.add_subcommand("version", "Print the version and exit");
  cmd->callback([exit_code] {
    std::printf("storegw %s\n", kVersion);
    *exit_code = kExitOk;
  });
}

}  // namespace storegw::gateway
