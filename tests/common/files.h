// Temporary directories and whole-file reads and writes, for every test
// folder.
#pragma once

#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>

namespace storegw::test {

// A fresh directory under `base` (default $TMPDIR, else /tmp), removed with
// everything in it when the object dies, whether the test passed or not.
// Mode 0755: a mosquitto the tests start as root drops to its own user and
// must read the configs and keys written in here.
class TempDir {
 public:
  explicit TempDir(std::string base = {}, std::string_view prefix = "storegw-test") {
    if (base.empty()) {
      const char* env = std::getenv("TMPDIR");
      base = env && *env ? env : "/tmp";
    }
    std::string templ = base + "/" + std::string(prefix) + "-XXXXXX";
    if (!mkdtemp(templ.data())) throw std::runtime_error("mkdtemp failed for " + templ);
    path_ = templ;
    chmod(path_.c_str(), 0755);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

inline std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

// Writes `content` (replacing the file); mode 0644 for the same reason as
// TempDir's. Throws when the file cannot be written.
inline void WriteFile(const std::filesystem::path& path, const std::string& content) {
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << content;
    if (!out.good()) throw std::runtime_error("cannot write " + path.string());
  }
  chmod(path.c_str(), 0644);
}

}  // namespace storegw::test
