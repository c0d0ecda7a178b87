#include "compress.h"

#include <zlib.h>
#include <zstd.h>

#include <memory>

namespace storegw::sync {

Result<std::string> Deflate(std::string_view in, int level) {
  uLongf cap = compressBound(static_cast<uLong>(in.size()));
  std::string out(cap, '\0');
  const int rc =
      compress2(reinterpret_cast<Bytef*>(out.data()), &cap,
                reinterpret_cast<const Bytef*>(in.data()), static_cast<uLong>(in.size()), level);
  if (rc != Z_OK)
    return Status::ResourceExhausted("deflate failed (zlib " + std::to_string(rc) + ")");
  out.resize(cap);
  return out;
}

Result<std::string> Inflate(std::string_view in, size_t max_out) {
  z_stream z{};
  if (inflateInit(&z) != Z_OK) return Status::ResourceExhausted("inflateInit failed");
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  std::string out;
  char buf[65536];
  int rc = Z_OK;
  while (rc == Z_OK) {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof buf;
    rc = inflate(&z, Z_NO_FLUSH);
    out.append(buf, sizeof buf - z.avail_out);
    if (out.size() > max_out) {
      inflateEnd(&z);
      return Status::InvalidArgument(
          "payload", "inflated payload exceeds " + std::to_string(max_out) + " bytes");
    }
    if (rc == Z_BUF_ERROR && z.avail_in == 0) break;
  }
  inflateEnd(&z);
  if (rc != Z_STREAM_END) return Status::Corruption("payload is not a complete zlib stream");
  return out;
}

Result<std::string> ZstdCompress(std::string_view in, int level) {
  std::string out(ZSTD_compressBound(in.size()), '\0');
  const size_t n = ZSTD_compress(out.data(), out.size(), in.data(), in.size(), level);
  if (ZSTD_isError(n)) {
    return Status::ResourceExhausted(std::string("zstd compression failed: ") +
                                     ZSTD_getErrorName(n));
  }
  out.resize(n);
  return out;
}

Result<std::string> ZstdDecompress(std::string_view in, size_t max_out) {
  std::unique_ptr<ZSTD_DStream, size_t (*)(ZSTD_DStream*)> z(ZSTD_createDStream(),
                                                            ZSTD_freeDStream);
  if (!z) return Status::ResourceExhausted("zstd: cannot create a decompression stream");
  ZSTD_initDStream(z.get());
  ZSTD_inBuffer src{in.data(), in.size(), 0};
  std::string out;
  char buf[65536];
  size_t last = 1;  // 0 once a frame is complete
  while (src.pos < src.size) {
    ZSTD_outBuffer dst{buf, sizeof buf, 0};
    last = ZSTD_decompressStream(z.get(), &dst, &src);
    if (ZSTD_isError(last)) {
      return Status::Corruption(std::string("payload is not a valid zstd stream: ") +
                                ZSTD_getErrorName(last));
    }
    out.append(buf, dst.pos);
    if (out.size() > max_out) {
      return Status::InvalidArgument(
          "payload", "decompressed payload exceeds " + std::to_string(max_out) + " bytes");
    }
    if (dst.pos == 0 && src.pos == src.size) break;
  }
  // Output still buffered in the stream once the input is consumed.
  while (last != 0) {
    ZSTD_outBuffer dst{buf, sizeof buf, 0};
    last = ZSTD_decompressStream(z.get(), &dst, &src);
    if (ZSTD_isError(last)) {
      return Status::Corruption(std::string("payload is not a valid zstd stream: ") +
                                ZSTD_getErrorName(last));
    }
    out.append(buf, dst.pos);
    if (out.size() > max_out) {
      return Status::InvalidArgument(
          "payload", "decompressed payload exceeds " + std::to_string(max_out) + " bytes");
    }
    if (dst.pos == 0) break;  // no progress: the frame is cut short
  }
  if (last != 0) return Status::Corruption("payload is not a complete zstd frame");
  return out;
}

std::optional<Compression> ParseCompression(std::string_view name) {
  if (name == "none") return Compression::kNone;
  if (name == kDeflate) return Compression::kDeflate;
  if (name == kZstd) return Compression::kZstd;
  return std::nullopt;
}

std::string_view CompressionName(Compression c) {
  switch (c) {
    case Compression::kDeflate:
      return kDeflate;
    case Compression::kZstd:
      return kZstd;
    case Compression::kNone:
      break;
  }
  return "none";
}

Result<std::string> Compress(Compression c, std::string_view in, int level) {
  switch (c) {
    case Compression::kDeflate:
      return Deflate(in, level);
    case Compression::kZstd:
      return ZstdCompress(in, level);
    case Compression::kNone:
      break;
  }
  return std::string(in);
}

}  // namespace storegw::sync
