#!/usr/bin/env bash
# The README's test command (and what .ci/run runs). Installs what it needs
# (packaging/install-deps.sh), then runs these stages in order and exits
# non-zero on the first failure:
#
#   build  Release build (preset ci: the flags of a plain
#          `cmake -DCMAKE_BUILD_TYPE=Release` build, plus -Werror) of
#          everything, then the whole suite: unit and integration tests,
#          the packages (lintian, dpkg -i), the chaos soak.
#          Catches: wrong behaviour, warnings at -O3 (the test code
#          itself compiles at -O1), packaging faults.
#   asan   the unit tests only (target unit_tests, label "unit") under
#          AddressSanitizer + UBSan, clang, -O1 (preset asan).
#          Catches: memory errors and undefined behaviour in every module.
#   fuzz   every libFuzzer target for FUZZ_SECONDS (default 30) over its
#          seed corpus (tests/fuzz/run.sh), built by the same asan preset:
#          one clang ASan+UBSan build serves the unit tests and the fuzzers.
#          Catches: crashes and hangs on what strangers can send.
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
#   arm64  (not in the default stages: 414 s on a quiet machine, more than
#          CI's 25-minute budget leaves) packaging/build-arm64.sh --packages
#          --unit: the arm64 packages cross-built and checked, the unit
#          tests under qemu-user. STAGES="build asan fuzz tsan arm64" adds it.
#
# Compiles overlap the tests: once the build stage has compiled, the asan
# and tsan builds compile one after the other in the background at the
# lowest CPU and IO priority (nice 19, ionice idle: the tests keep the
# machine whenever they want it) while the suites run (their tests wait on
# fsync, sockets, servers and timers much of the time), and each later
# stage only waits for what is left of its build. Their output goes to build/<preset>.log and is
# printed when a build fails. A stage's time below is its own wall time; a
# background build's time is printed next to it.
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
# are CPU-bound, so that stage runs one more than the cores; the ASan unit
# tests run one per core (at 2 x cores they took 148 s instead of 135-155 s).
CTEST_JOBS="${CTEST_JOBS:-$((2 * JOBS))}"
TSAN_CTEST_JOBS="${TSAN_CTEST_JOBS:-$((JOBS + 1))}"
STAGES="${STAGES:-build asan fuzz tsan}"
FUZZ_SECONDS="${FUZZ_SECONDS:-30}"
export STOREGW_SOAK_SECONDS="${SOAK_SECONDS:-${STOREGW_SOAK_SECONDS:-}}"

step() {  # step LABEL CMD...: runs CMD and records its time under the stage
  local start=$SECONDS
  "${@:2}"
  TIMES+=("$(printf '  %-22s %5d s' "$1" $((SECONDS - start)))")
}
cpu_ticks() {  # "busy total" jiffies of all CPUs since boot (/proc/stat)
  awk '/^cpu / { t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t }' /proc/stat
}
stage() {  # stage NAME: runs stage_NAME, records its time and how busy the CPUs were
  local start=$SECONDS b0 t0 b1 t1
  read -r b0 t0 < <(cpu_ticks)
  "stage_$1"
  read -r b1 t1 < <(cpu_ticks)
  TIMES+=("$(printf '%-6s %5d s  (CPUs %d%% busy)' "$1" $((SECONDS - start)) \
    $(((b1 - b0) * 100 / (t1 - t0 > 0 ? t1 - t0 : 1))))")
}

# Background builds: one chain (its own process group, killed when this
# script exits early) compiles the presets of the later stages that can
# wait, in order; build/.bg/<preset>.rc appears when a build ends.
BG_PRESETS=()
for s in $STAGES; do
  p="$s"
  [[ "$s" == fuzz ]] && p=asan  # the fuzz targets are part of the asan build
  case "$p" in asan | tsan)
    [[ " ${BG_PRESETS[*]} " == *" $p "* ]] || BG_PRESETS+=("$p") ;;
  esac
done
BG_PID=""
start_background_builds() {
  ((${#BG_PRESETS[@]})) || return 0
  rm -rf build/.bg && mkdir -p build/.bg
  local p cmds=""
  for p in "${BG_PRESETS[@]}"; do
    cmds+="start=\$SECONDS; { cmake --preset $p && cmake --build --preset $p -j $JOBS; } >build/$p.log 2>&1; "
    cmds+="echo \$? \$((SECONDS - start)) >build/.bg/$p.rc; "
  done
  setsid nice -n 19 ionice -c 3 bash -c "$cmds" </dev/null &
  BG_PID=$!
}
stop_background_builds() {
  if [[ -n "$BG_PID" ]] && kill -0 "$BG_PID" 2>/dev/null; then
    kill -- "-$BG_PID" 2>/dev/null || true
  fi
}
trap stop_background_builds EXIT

# wait_background_build PRESET: waits for its background build (or builds it
# now when it was not started in the background) and fails like it failed.
declare -A WAITED=()
wait_background_build() {
  local p="$1" start=$SECONDS rc secs
  if [[ -z "$BG_PID" ]]; then
    cmake --preset "$p" >/dev/null
    cmake --build --preset "$p" -j "$JOBS"
    return
  fi
  while [[ ! -f "build/.bg/$p.rc" ]]; do
    if ! kill -0 "$BG_PID" 2>/dev/null && [[ ! -f "build/.bg/$p.rc" ]]; then
      echo "background build of $p died"; return 1
    fi
    sleep 2
  done
  read -r rc secs <"build/.bg/$p.rc"
  if [[ -z "${WAITED[$p]:-}" ]]; then  # the fuzz stage waits for asan's build again
    WAITED[$p]=1
    echo "   ($p build: $secs s in the background, waited $((SECONDS - start)) s for it)"
    TIMES+=("$(printf '  %-6s %5d s  (background build of %s, overlapping)' "$p" "$secs" "$p")")
  fi
  if [[ "$rc" != 0 ]]; then
    echo "the $p build failed (build/$p.log):"
    tail -n 60 "build/$p.log"
    return 1
  fi
}

stage_build() {
  echo "== build (Release, preset ci)"
  cmake --preset ci >/dev/null
  step "ci: compile" cmake --build --preset ci -j "$JOBS"
  start_background_builds
  echo "== tests (all)"
  step "ci: tests" ctest --preset ci -j "$CTEST_JOBS"
}

stage_asan() {
  echo "== unit tests under ASan+UBSan"
  wait_background_build asan
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    step "asan: tests" ctest --preset asan -j "$JOBS"
}

stage_tsan() {
  echo "== all tests under ThreadSanitizer"
  wait_background_build tsan
  # setarch -R (no address-space randomisation, for the test processes
  # only): the TSan runtime of GCC 12 cannot map its shadow on kernels with a
  # high vm.mmap_rnd_bits ("FATAL: ThreadSanitizer: unexpected memory
  # mapping"); without randomisation it always can. Changes nothing else.
  step "tsan: tests" setarch "$(uname -m)" -R ctest --preset tsan -j "$TSAN_CTEST_JOBS"
}

stage_arm64() {
  echo "== arm64: cross build of the packages, unit tests under qemu-user"
  # Its own build lock is off: this script may itself run under the lock.
  STOREGW_BUILD_LOCK= JOBS="$JOBS" step "arm64: build + unit tests" \
    bash packaging/build-arm64.sh --packages --unit
}

stage_fuzz() {
  echo "== fuzz targets, ${FUZZ_SECONDS} s each (ASan+UBSan)"
  wait_background_build asan
  FUZZ_SECONDS="$FUZZ_SECONDS" step "fuzz: run" tests/fuzz/run.sh build/asan
}

for s in $STAGES; do stage "$s"; done
echo "== time per stage"
printf '  %s\n' "${TIMES[@]}"
printf '  %-6s %5d s\n' total "$SECONDS"
