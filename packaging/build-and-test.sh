#!/usr/bin/env bash
# The README's test command (and what .ci/run runs). Stages, in order; exits
# non-zero on the first failure:
#   1. build (RelWithDebInfo) and run the whole suite (unit + integration,
#      including the 2-minute chaos soak, tests/soak/chaos_soak.cc);
#   2. the unit tests under AddressSanitizer+UBSan (preset asan);
#   3. the whole suite under ThreadSanitizer (preset tsan);
#   4. every libFuzzer target for FUZZ_SECONDS (default 45) over its seed
#      corpus, under ASan+UBSan (preset fuzz, clang; tests/fuzz/run.sh).
# The time each stage took is printed at the end.
#
#   STAGES="build asan"  packaging/build-and-test.sh   only some stages
#   FUZZ_SECONDS=600     packaging/build-and-test.sh   fuzz longer
set -euo pipefail
cd "$(dirname "$0")/.."

bash packaging/install-deps.sh

JOBS="${JOBS:-$(nproc)}"
STAGES="${STAGES:-build asan tsan fuzz}"
FUZZ_SECONDS="${FUZZ_SECONDS:-45}"
TIMES=()

stage() {  # stage NAME: runs stage_NAME and records how long it took
  local start=$SECONDS
  "stage_$1"
  TIMES+=("$(printf '%-6s %4d s' "$1" $((SECONDS - start)))")
}

stage_build() {
  echo "== build (RelWithDebInfo)"
  cmake --preset default >/dev/null
  cmake --build --preset default -j "$JOBS"
  echo "== tests (all)"
  ctest --preset default -j "$JOBS"
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
  setarch "$(uname -m)" -R ctest --preset tsan -j "$JOBS"
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
