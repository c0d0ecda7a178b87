// main() of every doctest executable. ctest runs one case per process
// (`--test-case=NAME`, from doctest_discover_tests); a name that ctest split
// (a ';' in it) or that no longer exists would match nothing and pass
// vacuously. So: a run with a --test-case filter that ran no case fails.
//
// Under a sanitizer, doctest's signal handlers are compiled out
// (DOCTEST_CONFIG_NO_POSIX_SIGNALS; this doctest has no run-time switch):
// they would replace the sanitizer's SIGSEGV/SIGABRT handler, which prints
// the faulting stack, with one that only names the signal, and under TSan
// they allocate inside the handler, so TSan reports that instead of the
// crash. (The TSan build undefines __SANITIZE_THREAD__ for protobuf's sake
// and defines STOREGW_TSAN_BUILD instead: cmake/flags.cmake.)
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) || defined(STOREGW_TSAN_BUILD)
#define DOCTEST_CONFIG_NO_POSIX_SIGNALS
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define DOCTEST_CONFIG_NO_POSIX_SIGNALS
#endif
#endif
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>
#include <cstring>

namespace {

int g_cases_started = 0;

struct CountCases : doctest::IReporter {
  explicit CountCases(const doctest::ContextOptions&) {}
  void report_query(const doctest::QueryData&) override {}
  void test_run_start() override {}
  void test_run_end(const doctest::TestRunStats&) override {}
  void test_case_start(const doctest::TestCaseData&) override { ++g_cases_started; }
  void test_case_reenter(const doctest::TestCaseData&) override {}
  void test_case_end(const doctest::CurrentTestCaseStats&) override {}
  void test_case_exception(const doctest::TestCaseException&) override {}
  void subcase_start(const doctest::SubcaseSignature&) override {}
  void subcase_end() override {}
  void log_assert(const doctest::AssertData&) override {}
  void log_message(const doctest::MessageData&) override {}
  void test_case_skipped(const doctest::TestCaseData&) override {}
};

}  // namespace

DOCTEST_REGISTER_LISTENER("count-cases", 1, CountCases);

int main(int argc, char** argv) {
  doctest::Context context(argc, argv);
  const int rc = context.run();
  if (context.shouldExit()) return rc;
  bool filtered = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--test-case=", 12) == 0 || std::strncmp(argv[i], "-tc=", 4) == 0) {
      filtered = true;
    }
  }
  if (rc == 0 && filtered && g_cases_started == 0) {
    std::fprintf(stderr, "no test case matched the --test-case filter (a ';' in its name?)\n");
    return 1;
  }
  return rc;
}
