// zlib (RFC 1950, what HTTP calls Content-Encoding: deflate) for batch
// payloads. Sale events compress 4-6x: the same skus, tills, currency and
// field layout repeat in every event of a batch, and on a metered 4G or
// satellite link the bytes are what the store pays for. Shared by every
// transport (MQTT signals it with v5 properties, HTTPS with
// Content-Encoding).
#pragma once

#include <string>
#include <string_view>

#include "storegw/status.h"

namespace storegw::sync {

// MQTT v5 properties of a compressed batch: content type plus the user
// property content-encoding=deflate. (A storegw EventBatch always starts
// with byte 0x0A, a zlib stream with 0x78, for consumers without v5.)
inline constexpr std::string_view kBatchContentType = "application/x-protobuf";
inline constexpr std::string_view kContentEncodingKey = "content-encoding";
inline constexpr std::string_view kDeflate = "deflate";

// Level 1: the ratio of level 6 within a few percent on this data, at a
// fraction of the CPU of a small ARM box.
Result<std::string> Deflate(std::string_view in, int level = 1);
// Bounded: fails beyond `max_out` bytes (a corrupt or hostile stream).
Result<std::string> Inflate(std::string_view in, size_t max_out = 256u << 20);

}  // namespace storegw::sync
