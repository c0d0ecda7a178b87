// What `storegw frobnicate` says: the command that does not exist and the
// commands that do, instead of CLI11's "A subcommand is required".
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "storegw/cli/cli.h"

namespace storegw::gateway {

bool ReportUnknownCommand(const CLI::App& app, const std::vector<std::string>& args,
                          std::FILE* out) {
  const CLI::App* at = &app;
  std::string path = app.get_name();
  for (const std::string& arg : args) {
    if (arg.empty() || arg.front() == '-') return false;  // flags: CLI11's own message
    auto subs = at->get_subcommands([](const CLI::App* s) { return !s->get_name().empty(); });
    if (subs.empty()) return false;  // a positional argument of a command
    auto it = std::find_if(subs.begin(), subs.end(),
                           [&](const CLI::App* s) { return s->check_name(arg); });
    if (it != subs.end()) {
      at = *it;
      path += " " + at->get_name();
      continue;
    }
    // Only where a command is expected: a command that also takes
    // positionals leaves the mistake to CLI11.
    if (at->get_require_subcommand_min() == 0) return false;
    std::fprintf(out, "%s: unknown command '%s'\n\nCommands:\n", path.c_str(), arg.c_str());
    size_t width = 0;
    for (const CLI::App* s : subs) width = std::max(width, s->get_name().size());
    for (const CLI::App* s : subs) {
      std::fprintf(out, "  %-*s  %s\n", static_cast<int>(width), s->get_name().c_str(),
                   s->get_description().c_str());
    }
    std::fprintf(out, "\nRun '%s --help' for more.\n", path.c_str());
    return true;
  }
  return false;
}

}  // namespace storegw::gateway
