#include "auth.h"

#include "storegw/http/auth.h"

#include <cstdint>
#include <fstream>
#include <sstream>
#include <system_error>
#include <unordered_map>

#include "storegw/devices/device_api.h"

namespace storegw::devices {
namespace {

bool IsBlank(char c) {
  return c == ' ' || c == '\t' || c == '\r';
}


std::vector<std::string_view> SplitFields(std::string_view line) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && IsBlank(line[i])) ++i;
    if (i >= line.size()) break;
    size_t j = i;
    while (j < line.size() && !IsBlank(line[j])) ++j;
    out.push_back(line.substr(i, j - i));
    i = j;
  }
  return out;
}

}  // namespace

bool PrintableAscii(std::string_view s) {
  for (unsigned char c : s) {
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}


Result<TokenTable> TokenTable::Parse(std::string_view text, const std::string& name) {
  TokenTable table;
  std::unordered_map<std::string, size_t> device_line;
  std::unordered_map<std::string, size_t> token_line;
  size_t line_no = 0;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    auto fields = SplitFields(line);
    if (fields.empty() || fields[0].front() == '#') {
      if (end == text.size()) break;
      continue;
    }
    const std::string where = "device tokens file " + name + " line " + std::to_string(line_no);
    if (fields.size() != 2) {
      // Never echo the line: it may hold a token.
      return Status::InvalidArgument("device_tokens_file",
                                     where + ": expected \"DEVICE_ID TOKEN\" (two fields), found " +
                                         std::to_string(fields.size()) + " fields");
    }
    const std::string device(fields[0]);
    const std::string token(fields[1]);
    if (device.size() > 64 || !PrintableAscii(device)) {
      return Status::InvalidArgument(
          "device_tokens_file", where + ": device id must be 1..64 printable ASCII characters");
    }
    if (auto it = device_line.find(device); it != device_line.end()) {
      return Status::InvalidArgument("device_tokens_file", where + ": device '" + device +
                                                               "' is already listed on line " +
                                                               std::to_string(it->second));
    }
    if (auto it = token_line.find(token); it != token_line.end()) {
      return Status::InvalidArgument(
          "device_tokens_file", where + ": the token of device '" + device +
                                    "' is also the token on line " + std::to_string(it->second) +
                                    " (every device needs its own token)");
    }
    device_line.emplace(device, line_no);
    token_line.emplace(token, line_no);
    table.entries_.push_back({device, token});
    if (end == text.size()) break;
  }
  if (table.entries_.empty()) {
    return Status::InvalidArgument(
        "device_tokens_file",
        "device tokens file " + name +
            " names no device (expected \"DEVICE_ID TOKEN\" lines): every device request would "
            "be refused");
  }
  return table;
}

Result<TokenTable> TokenTable::Load(const std::filesystem::path& file) {
  std::error_code ec;
  if (!std::filesystem::exists(file, ec)) {
    return Status::NotFound("device tokens file " + file.string() + " does not exist");
  }
  if (std::filesystem::is_directory(file, ec)) {
    return Status::InvalidArgument("device_tokens_file",
                                   "device tokens file " + file.string() + " is a directory");
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    return Status::IoError("cannot read device tokens file " + file.string() +
                           " (check its permissions)");
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return Status::IoError("error reading device tokens file " + file.string());
  return Parse(ss.str(), file.string());
}

std::optional<std::string> TokenTable::DeviceForToken(std::string_view token) const {
  size_t found = entries_.size();
  for (size_t i = 0; i < entries_.size(); ++i) {
    // No break on a match: every entry is compared, whatever the token.
    const bool eq = http::ConstantTimeEquals(token, entries_[i].token);
    found = eq ? i : found;
  }
  if (found == entries_.size()) return std::nullopt;
  return entries_[found].device_id;
}

std::vector<std::string> TokenTable::device_ids() const {
  std::vector<std::string> ids;
  ids.reserve(entries_.size());
  for (const auto& e : entries_) ids.push_back(e.device_id);
  return ids;
}

Result<size_t> CheckDeviceTokensFile(const std::filesystem::path& file) {
  auto table = TokenTable::Load(file);
  if (!table.ok()) return table.status();
  return table->size();
}

}  // namespace storegw::devices
