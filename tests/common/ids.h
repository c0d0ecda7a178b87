// Test ids built from a prefix and a number: Id("e", 7) == "e7".
//
// Not `"e" + std::to_string(7)`: that is operator+(const char*, std::string&&),
// which inserts at the front of the temporary, and GCC 12 at -O3 misreads
// the inlined insert as an overlapping memcpy (-Wrestrict, a false positive
// fixed in GCC 13). Appending to a string that starts with the prefix is the
// same result without the warning, so a Release build of the tests stays
// clean with -Werror.
#pragma once

#include <string>
#include <string_view>

namespace storegw::test {

inline std::string Id(std::string_view prefix, long long n) {
  std::string s(prefix);
  s += std::to_string(n);
  return s;
}

}  // namespace storegw::test
