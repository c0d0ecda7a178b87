#!/usr/bin/env bash
# The README's test command (and what .ci/run runs). Installs what it needs
# (packaging/install-deps.sh), then runs these stages in order and exits
# non-zero on the first failure:
#
#   build  Release build (preset ci: the flags of a plain
#          `cmake -DCMAKE_BUILD_TYPE=Release` build, plus -Werror) of
#          everything, then the whole suite: unit and integration tests,
#          the packages (lintian, dpkg -i), the chaos soak.
#          Catches: wrong behaviour, warnings at -O3, packaging faults.
#   asan   the unit tests only (target unit_tests, label "unit") under
#          AddressSanitizer + UBSan, GCC, -O1.
#          Catches: memory errors and undefined behaviour in every module.
#   tsan   the whole suite but the package tests under ThreadSanitizer
#          (the daemon processes the tests start are TSan builds too; the
#          chaos soak runs 60 s here, 120 s in the build stage; the ledger
#          model 2,500 operations instead of 10,000 and the power-cut tests
#          30 cuts instead of 110: their logic is checked in full in the
#          build stage, and a longer run of the same single writer finds no
#          more races). The benchmark programs are not built here
#          (STOREGW_BENCHMARKS=OFF): the build stage runs their smoke runs.
#          Catches: data races and lock-order problems, also in the daemon
#          under the soak's faults.
#   fuzz   every libFuzzer target for FUZZ_SECONDS (default 30) over its
#          seed corpus, clang, ASan+UBSan (tests/fuzz/run.sh).
#          Catches: crashes and hangs on what strangers can send.
#
# The presets build in "unity" batches (CMAKE_UNITY_BUILD): most of a
# compile is parsing the same protobuf/httplib/doctest headers, and a batch
# parses them once for 8 sources. The sanitizer and fuzz builds keep line
# tables only (-g1: what a report's stack trace needs; full -g doubles
# their compile time). Each stage's time is printed at the end.
#
#   STAGES="build asan"  packaging/build-and-test.sh   only some stages
#   FUZZ_SECONDS=600     packaging/build-and-test.sh   fuzz longer
#   SOAK_SECONDS=3600    packaging/build-and-test.sh   a longer chaos soak
set -euo pipefail
cd "$(dirname "$0")/.."

t0=$SECONDS
bash packaging/install-deps.sh
TIMES=("$(printf '%-6s %5d s' deps $((SECONDS - t0)))")

JOBS="${JOBS:-$(nproc)}"
# Tests run more at a time than there are cores: most of them wait (on
# fsync, sockets, servers starting, the soak's timers); measured on 2 cores,
# the build stage's suite keeps the CPU about 40 % busy at -j2. TSan's tests
# are CPU-bound, so that stage runs one more than the cores.
CTEST_JOBS="${CTEST_JOBS:-$((2 * JOBS))}"
TSAN_CTEST_JOBS="${TSAN_CTEST_JOBS:-$((JOBS + 1))}"
STAGES="${STAGES:-build asan tsan fuzz}"
FUZZ_SECONDS="${FUZZ_SECONDS:-30}"
export STOREGW_SOAK_SECONDS="${SOAK_SECONDS:-${STOREGW_SOAK_SECONDS:-}}"

stage() {  # stage NAME: runs stage_NAME and records how long it took
  local start=$SECONDS
  "stage_$1"
  TIMES+=("$(printf '%-6s %5d s' "$1" $((SECONDS - start)))")
}

stage_build() {
  echo "== build (Release, preset ci)"
  cmake --preset ci >/dev/null
  cmake --build --preset ci -j "$JOBS"
  echo "== tests (all)"
  ctest --preset ci -j "$CTEST_JOBS"
}

stage_asan() {
  echo "== unit tests under ASan+UBSan"
  cmake --preset asan >/dev/null
  cmake --build --preset asan -j "$JOBS"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --preset asan -j "$JOBS"
}

stage_tsan() {
  echo "== all tests under ThreadSanitizer"
  cmake --preset tsan >/dev/null
  cmake --build --preset tsan -j "$JOBS"
  # setarch -R (no address-space randomisation, for the test processes
  # only): the TSan runtime of GCC 12 cannot map its shadow on kernels with a
  # high vm.mmap_rnd_bits ("FATAL: ThreadSanitizer: unexpected memory
  # mapping"); without randomisation it always can. Changes nothing else.
  setarch "$(uname -m)" -R ctest --preset tsan -j "$TSAN_CTEST_JOBS"
}

stage_fuzz() {
  echo "== fuzz targets, ${FUZZ_SECONDS} s each (ASan+UBSan)"
  cmake --preset fuzz >/dev/null
  cmake --build --preset fuzz -j "$JOBS"
  FUZZ_SECONDS="$FUZZ_SECONDS" tests/fuzz/run.sh build/fuzz
}

for s in $STAGES; do stage "$s"; done
echo "== time per stage"
printf '  %s\n' "${TIMES[@]}"
printf '  %-6s %5d s\n' total "$SECONDS"
