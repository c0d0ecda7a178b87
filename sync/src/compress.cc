#include "compress.h"

#include <zlib.h>

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

}  // namespace storegw::sync
