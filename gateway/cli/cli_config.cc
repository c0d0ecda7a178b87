// `storegw config check --config FILE`: validates a config file and prints
// the effective config (every key, secrets masked) as TOML on stdout.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "storegw/cli/cli.h"
#include "storegw/config/config.h"
#include "storegw/devices/device_api.h"

namespace storegw::gateway {

void AddConfigCommand(CLI::App& app, int* exit_code) {
  auto* config = app.add_subcommand("config", "Work with the config file");
  config->require_subcommand(1);
  auto* check = config->add_subcommand(
      "check", "Validate a config file and print the effective config (secrets masked)");
  auto path = std::make_shared<std::string>();
  check->add_option("--config,-c", *path, "The TOML config file")->required();
  check->callback([path, exit_code] {
    std::vector<std::string> problems;
    auto cfg = LoadConfigFile(*path, &problems);
    if (!cfg.ok()) {
      std::fprintf(stderr, "config check: %s is not valid:\n", path->c_str());
      for (const auto& p : problems) std::fprintf(stderr, "  %s\n", p.c_str());
      *exit_code = kExitFailure;
      return;
    }
    if (Status s = CheckConfigFiles(*cfg); !s.ok()) {
      std::fprintf(stderr, "config check: %s is not valid:\n  %s: %s\n", path->c_str(),
                   path->c_str(), s.message().c_str());
      *exit_code = kExitFailure;
      return;
    }
    // The tokens file is checked the way the device API will read it (line
    // numbers in errors, never a token).
    if (!cfg->http.device_tokens_file.empty()) {
      auto n = devices::CheckDeviceTokensFile(cfg->http.device_tokens_file);
      if (!n.ok()) {
        std::fprintf(stderr, "config check: %s is not valid:\n  %s: http.device_tokens_file: %s\n",
                     path->c_str(), path->c_str(), n.status().message().c_str());
        *exit_code = kExitFailure;
        return;
      }
      std::fprintf(stderr, "config check: %s names %zu devices\n",
                   cfg->http.device_tokens_file.c_str(), *n);
    }
    std::fputs("# storegw effective configuration (secrets masked)\n", stdout);
    std::fputs(ConfigToToml(*cfg).c_str(), stdout);
    std::fprintf(stderr, "config check: %s is valid\n", path->c_str());
    *exit_code = kExitOk;
  });
}

}  // namespace storegw::gateway
