// What the gateway knows of each device that talks to its API: requests,
// events accepted, duplicates, conflicts, refusals by reason, last error,
// first and last seen. Kept in memory (DeviceApi records every POST
// /v1/events in it) and saved in the journal's database every few seconds,
// so a restart keeps it. A device silent for `silent_after` while the store
// is open (`opening_hours`) is flagged.
//
// Threads: every method may be called from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "storegw/status.h"
#include "storegw/storage/journal.h"
#include "storegw/v1/storegw.pb.h"

namespace storegw::devices {

// When the store is open, as minutes of the local day: "07:00-22:00", or
// "22:00-06:00" across midnight; "" = always open.
struct OpeningHours {
  bool always = true;
  int open_minute = 0;   // 0..1439
  int close_minute = 0;  // 0..1439; the store closes at this minute
  bool IsOpen(int minute_of_day) const;
};
// kInvalidArgument naming what is wrong ("08:00-25:00: hour 25 is not 0..23").
Result<OpeningHours> ParseOpeningHours(std::string_view text);

// The outcome of one POST /v1/events, as DeviceApi records it.
struct RequestOutcome {
  std::string device;  // the token's device, else the first event's device_id; "" = unknown
  int status = 200;
  std::string reason;      // status >= 400: invalid, auth, too_large, media_type,
                           // unavailable, conflict, internal
  std::string error_body;  // status >= 400: the answer's JSON error
  uint64_t accepted = 0, duplicate = 0, conflicts = 0;
};

struct DeviceRegistryOptions {
  std::chrono::seconds silent_after{600};
  OpeningHours opening_hours;  // always open by default
  // Devices tracked by name; requests of further devices are counted under
  // kOtherDevices (a misbehaving client inventing ids cannot grow memory).
  size_t max_devices = 10000;
  // The clock (Unix microseconds) and the local minute of the day of a
  // time; replaceable for tests.
  std::function<int64_t()> now_us;
  std::function<int(int64_t unix_us)> local_minute;
};

class DeviceRegistry {
 public:
  static constexpr std::string_view kOtherDevices = "(other)";
  static constexpr std::string_view kUnknownDevice = "";

  explicit DeviceRegistry(DeviceRegistryOptions options = {});

  // Reads the records a previous run saved (merged into what is there).
  Status Load(storage::Journal& journal);
  void Record(const RequestOutcome& outcome);
  // Saves the records changed since the last Save (one writer request).
  Status Save(storage::Journal& journal);
  // Every device, worst first (silent, then most refusals, then the longest
  // quiet), `silent` computed now.
  v1::DeviceList List() const;

  const DeviceRegistryOptions& options() const { return o_; }

 private:
  bool IsSilent(const v1::DeviceStatus& d, int64_t now) const;

  DeviceRegistryOptions o_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, v1::DeviceStatus> devices_;
  std::unordered_set<std::string> dirty_;
};

}  // namespace storegw::devices
