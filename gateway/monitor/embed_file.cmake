# cmake -DIN=file -DOUT=file.cc -DNAMESPACE=ns -DFUNCTION=Name -P embed_file.cmake
# Writes OUT: a C++ source whose `std::string_view ns::Name()` returns the
# bytes of IN, as a raw string literal (IN must not contain the delimiter).
file(READ "${IN}" content)
set(delim "storegw_embed")
string(FIND "${content}" ")${delim}\"" found)
if(NOT found EQUAL -1)
  message(FATAL_ERROR "${IN} contains the raw-string delimiter )${delim}\"")
endif()
get_filename_component(name "${IN}" NAME)
file(WRITE "${OUT}.tmp"
  "// Generated from ${name} by embed_file.cmake: do not edit.\n"
  "#include <string_view>\n\n"
  "namespace ${NAMESPACE} {\n\n"
  "std::string_view ${FUNCTION}() {\n"
  "  static constexpr std::string_view kText = R\"${delim}(${content})${delim}\";\n"
  "  return kText;\n"
  "}\n\n"
  "}  // namespace ${NAMESPACE}\n")
# Only touch OUT when it changed, so an unchanged page rebuilds nothing.
file(COPY_FILE "${OUT}.tmp" "${OUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUT}.tmp")
