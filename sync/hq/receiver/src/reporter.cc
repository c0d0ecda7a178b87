#include "reporter.h"

#include <spdlog/spdlog.h>

namespace storegw::hq::internal {
namespace {

// Keys of the rate-limited log after the refuse reasons.
constexpr size_t kStoreErrorKey = RateLimitedLog::kKeys - 1;
constexpr size_t kBadStatusKey = RateLimitedLog::kKeys - 2;

}  // namespace

std::optional<std::string> RateLimitedLog::Admit(size_t key, std::string line,
                                                 Clock::time_point now) {
  Slot& s = slots_[key < kKeys ? key : kKeys - 1];
  if (s.used && now - s.last < period_) {
    ++s.suppressed;
    return std::nullopt;
  }
  if (s.suppressed > 0) {
    line += " (" + std::to_string(s.suppressed) + " more like it in the last " +
            std::to_string(std::chrono::duration_cast<std::chrono::seconds>(now - s.last).count()) +
            " s not logged)";
  }
  s.used = true;
  s.last = now;
  s.suppressed = 0;
  return line;
}

std::string ScrubSecrets(std::string text) {
  // key=value pairs: password=secret, password = 'sec ret'
  for (size_t at = 0; (at = text.find("password", at)) != std::string::npos;) {
    size_t p = at + 8;
    while (p < text.size() && text[p] == ' ') ++p;
    if (p >= text.size() || text[p] != '=') {
      at = p;
      continue;
    }
    ++p;
    while (p < text.size() && text[p] == ' ') ++p;
    size_t end = p;
    if (end < text.size() && text[end] == '\'') {
      end = text.find('\'', end + 1);
      end = end == std::string::npos ? text.size() : end + 1;
    } else {
      while (end < text.size() && text[end] != ' ' && text[end] != '&' && text[end] != '"') ++end;
    }
    text.replace(p, end - p, "***");
    at = p + 3;
  }
  // scheme://user:secret@host
  for (size_t at = 0; (at = text.find("://", at)) != std::string::npos;) {
    const size_t user = at + 3;
    size_t end = user;
    while (end < text.size() && text[end] != '@' && text[end] != '/' && text[end] != ' ') ++end;
    if (end < text.size() && text[end] == '@') {
      const size_t colon = text.find(':', user);
      if (colon != std::string::npos && colon < end) text.replace(colon + 1, end - colon - 1, "***");
    }
    at = user;
  }
  return text;
}

void Reporter::Refused(RefuseReason reason, std::string_view source, std::string_view detail) {
  std::optional<std::string> line;
  {
    std::lock_guard lk(mu_);
    ++stats_.refused[RefuseReasonName(reason)];
    line = log_.Admit(static_cast<size_t>(reason),
                      "hq: refused a batch from " + std::string(source) + ": " +
                          RefuseReasonName(reason) + ": " + std::string(detail),
                      RateLimitedLog::Clock::now());
  }
  if (line) spdlog::warn("{}", *line);
}

void Reporter::BadStatus(std::string_view source, std::string_view detail) {
  std::optional<std::string> line;
  {
    std::lock_guard lk(mu_);
    line = log_.Admit(kBadStatusKey,
                      "hq: ignored a gateway status on " + std::string(source) + ": " +
                          std::string(detail),
                      RateLimitedLog::Clock::now());
  }
  if (line) spdlog::warn("{}", *line);
}

void Reporter::StoreError(const std::string& error) {
  const std::string e = ScrubSecrets(error);
  std::optional<std::string> line;
  {
    std::lock_guard lk(mu_);
    ++stats_.store_errors;
    stats_.last_error = "store: " + e;
    line = log_.Admit(kStoreErrorKey, "hq: store transaction failed (nothing acknowledged, retrying): " + e,
                      RateLimitedLog::Clock::now());
  }
  if (line) spdlog::error("{}", *line);
}

void Reporter::SetLastError(const std::string& error) {
  std::lock_guard lk(mu_);
  stats_.last_error = ScrubSecrets(error);
}

}  // namespace storegw::hq::internal
