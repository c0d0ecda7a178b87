// Numbers for people, the same way on the terminal (`storegw status`) and on
// the status page (status_page.html has the JavaScript twins of these):
//   FormatCount(12345)        "12,345"
//   FormatBytes(3355443)      "3.2 MB"   (1024-based, like `ls -h`)
//   FormatAge(8040)           "2 h 14 min"
//   FormatRate(4.25)          "4.3/s"
//   FormatSensorValue(4500, "temp_mc")  "4.5 °C"
// Pure functions, any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace storegw::gateway {

// Thousands separated by commas: 0 -> "0", 1234567 -> "1,234,567".
std::string FormatCount(uint64_t n);
std::string FormatCount(int64_t n);  // "-1,234"

// B, KB, MB, GB, TB in steps of 1024; one decimal below 10 units and none
// above: 512 -> "512 B", 1536 -> "1.5 KB", 3355443 -> "3.2 MB",
// 1073741824 -> "1 GB", 52428800 -> "50 MB".
std::string FormatBytes(uint64_t bytes);

// At most two units: "0 s", "42 s", "5 min 3 s", "2 h 14 min", "3 d 4 h".
// The smaller unit is left out when it is zero ("2 h", "5 min").
std::string FormatAge(uint64_t seconds);

// Events per second: "0/s", "0.4/s", "12/s" (one decimal below 10),
// "1,234/s".
std::string FormatRate(double per_second);

// A percentage of `part` in `whole` with no decimals, "0%".."100%"; "-"
// when whole is 0. Rounds down, so 99.6% full does not read as "100%".
std::string FormatPercent(uint64_t part, uint64_t whole);

// A sensor reading in its unit: temp_mc (milli-degrees Celsius, also for an
// empty metric) in degrees with one decimal, 4500 -> "4.5 °C",
// -18250 -> "-18.3 °C"; any other metric as a count and its name,
// 1234 "rh_pm" -> "1,234 rh_pm".
std::string FormatSensorValue(int64_t value, std::string_view metric);

// "2026-11-27 14:02:05" in local time for a Unix time in microseconds.
std::string FormatLocalTime(int64_t unix_us);

}  // namespace storegw::gateway
