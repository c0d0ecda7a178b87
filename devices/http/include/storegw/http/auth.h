// Bearer tokens on every HTTP server storegw runs: reading the header and
// comparing a token without telling an attacker how much of a guess was
// right.
#pragma once

#include <optional>
#include <string_view>

namespace storegw::http {

// True when `given` equals `secret`. Runs in time that depends only on
// secret.size(), not on the contents of `given` nor on where the two differ.
bool ConstantTimeEquals(std::string_view given, std::string_view secret);

// The token of an "Authorization: Bearer TOKEN" header value (the scheme is
// case-insensitive, blanks around the token are ignored); nullopt when the
// header is missing, not a Bearer credential, or has no token.
std::optional<std::string_view> BearerToken(std::string_view authorization);

}  // namespace storegw::http
