// ThreadSanitizer builds only (STOREGW_TSAN=ON): Debian's libcpp-httplib is
// not instrumented, so TSan sees its memcpy/memcmp (intercepted) but not the
// fast path of the guard of its function-local static std::regex objects
// (an uninstrumented atomic load), and reports the first use of such a regex
// by a second worker thread as a race. Suppress reports whose intercepted
// call comes from that library; our own code stays fully checked.
// (cmake/flags.cmake undefines __SANITIZE_THREAD__ and defines STOREGW_TSAN_BUILD.)
#if defined(__SANITIZE_THREAD__) || defined(STOREGW_TSAN_BUILD)
extern "C" const char* __tsan_default_suppressions() {
  return "called_from_lib:libcpp-httplib.so.0.11\n"
         // libspdlog's registry, built by the first log call (on a worker
         // thread here): its static guard is inside the uninstrumented
         // library (see tests/tsan.supp).
         "race:spdlog::details::registry::registry\n";
}
#endif
