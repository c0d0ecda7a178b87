// Device authentication: the tokens file and bearer-token lookup.
// Internal to storegw_devices (tests include it directly).
#pragma once

#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "storegw/status.h"

namespace storegw::devices {

// The devices of a tokens file. Immutable after Load(); safe to share
// between threads.
class TokenTable {
 public:
  // Parses "DEVICE_ID TOKEN" lines: fields separated by spaces or tabs,
  // lines whose first non-blank character is '#' and blank lines ignored.
  // Errors (kInvalidArgument, or kNotFound/kIoError for the file) name the
  // file and the line number and never include a token: a line without
  // exactly two fields, a device_id that is not 1..64 printable ASCII
  // characters, a device listed twice, a token used by two devices, a file
  // with no device at all.
  static Result<TokenTable> Load(const std::filesystem::path& file);
  static Result<TokenTable> Parse(std::string_view text, const std::string& name_for_errors);

  // The device that `token` belongs to, or nullopt. Compares against every
  // token in the table in constant time per token (no early exit on the
  // first differing byte, no early exit on a match), so the time taken does
  // not tell an attacker how much of a guess was right.
  std::optional<std::string> DeviceForToken(std::string_view token) const;

  size_t size() const { return entries_.size(); }
  // Device ids in file order (the simulator's lane i uses entry i).
  std::vector<std::string> device_ids() const;
  // Token of the i-th device (simulator only; never log it).
  const std::string& token(size_t i) const { return entries_[i].token; }

 private:
  struct Entry {
    std::string device_id;
    std::string token;
  };
  std::vector<Entry> entries_;
};

// True when every byte of `s` is printable ASCII other than space (0x21..0x7e):
// what device ids and skus in URLs may hold.
bool PrintableAscii(std::string_view s);

}  // namespace storegw::devices
