// `storegw-hq config check --config FILE`: validates a config file (every
// problem listed, with file and line) and prints the effective config as
// TOML, secrets masked. `storegw-hq version`.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "storegw/hq/app/cli.h"
#include "storegw/hq/app/config.h"
#include "version.h"

namespace storegw::hq {

void AddConfigCommand(CLI::App& app, int* exit_code) {
  auto* config = app.add_subcommand("config", "Work with the config file");
  config->require_subcommand(1);
  auto* check = config->add_subcommand(
      "check", "Validate a config file and print the effective config (secrets masked)");
  auto path = std::make_shared<std::string>();
  check->add_option("--config,-c", *path, "The TOML config file")->required();
  check->callback([path, exit_code] {
    std::vector<std::string> problems;
    auto cfg = LoadHqConfigFile(*path, &problems);
    if (!cfg.ok()) {
      std::fprintf(stderr, "config check: %s is not valid:\n", path->c_str());
      for (const auto& p : problems) std::fprintf(stderr, "  %s\n", p.c_str());
      *exit_code = kExitFailure;
      return;
    }
    if (Status s = CheckHqConfigFiles(*cfg); !s.ok()) {
      std::fprintf(stderr, "config check: %s is not valid:\n  %s: %s\n", path->c_str(),
                   path->c_str(), s.message().c_str());
      *exit_code = kExitFailure;
      return;
    }
    std::fputs("# storegw-hq effective configuration (secrets masked)\n", stdout);
    std::fputs(HqConfigToToml(*cfg).c_str(), stdout);
    std::fprintf(stderr, "config check: %s is valid\n", path->c_str());
    *exit_code = kExitOk;
  });
}

void AddVersionCommand(CLI::App& app, int* exit_code) {
  auto* cmd = app.add_subcommand("version", "Print the version and exit");
  cmd->callback([exit_code] {
    std::printf("storegw-hq %s\n", storegw::gateway::kVersion);
    *exit_code = kExitOk;
  });
}

}  // namespace storegw::hq
