#include "storegw/http/auth.h"

#include <cstddef>

namespace storegw::http {
namespace {

bool IsBlank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

}  // namespace

bool ConstantTimeEquals(std::string_view given, std::string_view secret) {
  // Walk all of `secret` whatever `given` holds; fold every difference (and
  // the length difference) into one accumulator and test it once at the end.
  size_t diff = given.size() ^ secret.size();
  for (size_t i = 0; i < secret.size(); ++i) {
    const unsigned char g = given.empty() ? 0 : static_cast<unsigned char>(given[i % given.size()]);
    diff |= static_cast<size_t>(g ^ static_cast<unsigned char>(secret[i]));
  }
  // Keep the loop whole (no early exit through the optimiser).
  volatile size_t sink = diff;
  return sink == 0;
}

std::optional<std::string_view> BearerToken(std::string_view h) {
  while (!h.empty() && IsBlank(h.front())) h.remove_prefix(1);
  while (!h.empty() && IsBlank(h.back())) h.remove_suffix(1);
  constexpr std::string_view kScheme = "bearer";
  if (h.size() <= kScheme.size()) return std::nullopt;
  for (size_t i = 0; i < kScheme.size(); ++i) {
    char c = h[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != kScheme[i]) return std::nullopt;
  }
  if (!IsBlank(h[kScheme.size()])) return std::nullopt;
  h.remove_prefix(kScheme.size());
  while (!h.empty() && IsBlank(h.front())) h.remove_prefix(1);
  if (h.empty()) return std::nullopt;
  return h;
}

}  // namespace storegw::http
