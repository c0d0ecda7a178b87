// The status page: gateway/status_page.html, turned into a C++ string at
// build time (gateway/embed_file.cmake), so the binary serves it with no
// file on disk and the page needs nothing from the network: no CDN, no
// fonts, no external scripts (a store's uplink may be down exactly when
// someone looks).
#pragma once

#include <string_view>

namespace storegw::gateway {

std::string_view StatusPageHtml();

}  // namespace storegw::gateway
