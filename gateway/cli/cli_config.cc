// `storegw config check --config FILE [--strict]`: validates a config file
// and prints the effective config (every key, secrets masked) as TOML on
// stdout. Keys renamed or removed by a release are reported as warnings (or
// errors, see RetiredKey in config.h) with what to write instead.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "storegw/cli/cli.h"
#include "storegw/config/config.h"
#include "storegw/devices/device_api.h"

namespace storegw::gateway {

namespace {

void PrintConfigWarnings(const std::string& path, const std::vector<std::string>& warnings,
                         std::FILE* err) {
  if (warnings.empty()) return;
  std::fprintf(err, "config check: %s: %zu warning%s:\n", path.c_str(), warnings.size(),
               warnings.size() == 1 ? "" : "s");
  for (const auto& w : warnings) std::fprintf(err, "  %s\n", w.c_str());
}

}  // namespace

int CheckConfigCommand(const std::string& path, bool strict, const ConfigParseOptions& options,
                       std::FILE* out, std::FILE* err) {
  std::vector<std::string> problems, warnings;
  ConfigParseOptions opts = options;
  opts.warnings = &warnings;
  auto cfg = LoadConfigFile(path, &problems, opts);
  PrintConfigWarnings(path, warnings, err);
  if (!cfg.ok()) {
    std::fprintf(err, "config check: %s is not valid:\n", path.c_str());
    for (const auto& p : problems) std::fprintf(err, "  %s\n", p.c_str());
    return kExitFailure;
  }
  if (Status s = CheckConfigFiles(*cfg); !s.ok()) {
    std::fprintf(err, "config check: %s is not valid:\n  %s: %s\n", path.c_str(), path.c_str(),
                 s.message().c_str());
    return kExitFailure;
  }
  // The tokens file is checked the way the device API will read it (line
  // numbers in errors, never a token).
  if (!cfg->http.device_tokens_file.empty()) {
    auto n = devices::CheckDeviceTokensFile(cfg->http.device_tokens_file);
    if (!n.ok()) {
      std::fprintf(err, "config check: %s is not valid:\n  %s: http.device_tokens_file: %s\n",
                   path.c_str(), path.c_str(), n.status().message().c_str());
      return kExitFailure;
    }
    std::fprintf(err, "config check: %s names %zu devices\n", cfg->http.device_tokens_file.c_str(),
                 *n);
  }
  if (strict && !warnings.empty()) {
    std::fprintf(err,
                 "config check: %s is not valid with --strict: %zu warning%s (see above); "
                 "update the file\n",
                 path.c_str(), warnings.size(), warnings.size() == 1 ? "" : "s");
    return kExitFailure;
  }
  std::fputs("# storegw effective configuration (secrets masked)\n", out);
  std::fputs(ConfigToToml(*cfg).c_str(), out);
  if (warnings.empty()) {
    std::fprintf(err, "config check: %s is valid\n", path.c_str());
  } else {
    std::fprintf(err,
                 "config check: %s is valid, with %zu warning%s (see above): update the file\n",
                 path.c_str(), warnings.size(), warnings.size() == 1 ? "" : "s");
  }
  return kExitOk;
}

void AddConfigCommand(CLI::App& app, int* exit_code) {
  auto* config = app.add_subcommand("config", "Work with the config file");
  config->require_subcommand(1);
  auto* check = config->add_subcommand(
      "check", "Validate a config file and print the effective config (secrets masked)");
  auto path = std::make_shared<std::string>();
  auto strict = std::make_shared<bool>(false);
  check->add_option("--config,-c", *path, "The TOML config file")->required();
  check->add_flag("--strict", *strict,
                  "Fail (exit 1) on warnings too: a key renamed or removed by a release");
  check->callback([path, strict, exit_code] {
    *exit_code = CheckConfigCommand(*path, *strict, {}, stdout, stderr);
  });
}

}  // namespace storegw::gateway
