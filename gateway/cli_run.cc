#include <memory>

#include "storegw/cli/cli.h"
#include "daemon.h"

namespace storegw::gateway {

void AddRunCommand(CLI::App& app, int* exit_code) {
  auto f = std::make_shared<RunFlags>();
  auto* cmd = app.add_subcommand(
      "run", "Run the gateway daemon until SIGTERM/SIGINT (embedded defaults without --config)");
  cmd->add_option("--config,-c", f->config_path, "The TOML config file");
  cmd->add_option("--data-dir", f->data_dir, "Override gateway.data_dir");
  cmd->add_option("--listen", f->listen, "Override http.listen (HOST:PORT)");
  cmd->callback([f, exit_code] { *exit_code = RunDaemon(*f); });
}

}  // namespace storegw::gateway
