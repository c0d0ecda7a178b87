// zlib (RFC 1950, what HTTP calls Content-Encoding: deflate) and zstd
// (RFC 8878, Content-Encoding: zstd) for batch payloads. Sale events compress 4-6x: the same skus, tills, currency and
// field layout repeat in every event of a batch, and on a metered 4G or
// satellite link the bytes are what the store pays for. Shared by every
// transport (MQTT signals it with v5 properties, HTTPS with
// Content-Encoding).
#pragma once

#include <cstdint>
#include <optional>
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
inline constexpr std::string_view kZstd = "zstd";
// The first byte of a zstd frame (magic number 0xFD2FB528, little endian).
inline constexpr uint8_t kZstdFirstByte = 0x28;

// Level 1: the ratio of level 6 within a few percent on this data, at a
// fraction of the CPU of a small ARM box.
Result<std::string> Deflate(std::string_view in, int level = 1);
// Bounded: fails beyond `max_out` bytes (a corrupt or hostile stream).
Result<std::string> Inflate(std::string_view in, size_t max_out = 256u << 20);

// One zstd frame of `in` at `level` (1..19; negative levels are faster).
Result<std::string> ZstdCompress(std::string_view in, int level = 3);
// Bounded like Inflate: fails beyond `max_out` bytes; the input must be
// exactly one or more complete frames.
Result<std::string> ZstdDecompress(std::string_view in, size_t max_out = 256u << 20);

// How a batch payload is encoded on the wire (uplink.compression).
enum class Compression { kNone, kDeflate, kZstd };
// "none", "deflate", "zstd"; nullopt for anything else.
std::optional<Compression> ParseCompression(std::string_view name);
std::string_view CompressionName(Compression c);
// `level` (uplink.compression_level), or the codec's default for 0:
// deflate 1 (the ratio of level 6 within a few percent on till traffic, at
// a fraction of the CPU), zstd 3 (zstd's own default).
inline int DefaultLevel(Compression c, int level) {
  if (level != 0) return level;
  return c == Compression::kZstd ? 3 : 1;
}
// The payload of a batch as sent: `in` itself for kNone.
Result<std::string> Compress(Compression c, std::string_view in, int level);

}  // namespace storegw::sync
