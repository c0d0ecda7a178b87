#!/usr/bin/env bash
# Runs each libFuzzer target of the asan build (cmake --preset asan) for a
# bounded time over its seed corpus (tests/fuzz/corpus/<target>/), under
# ASan+UBSan. Fails (exit 1) when any target finds a crash, a sanitizer
# report, a leak, a failed property check or a timeout; the input is kept
# as BUILD/fuzz-out/<target>/crash-* and the command to replay it printed.
#
#   tests/fuzz/run.sh [BUILD_DIR]          BUILD_DIR defaults to build/asan
#   FUZZ_SECONDS=600 tests/fuzz/run.sh     time per target (default 60)
#   FUZZ_TARGETS="config" tests/fuzz/run.sh  only these targets
#   FUZZ_JOBS=1 tests/fuzz/run.sh          targets one at a time (default: nproc)
#
# New inputs libFuzzer finds go to BUILD/fuzz-out/<target>/corpus (kept
# between runs, never into the repo). To keep a crash input as a regression
# test, fix the bug and copy the input into tests/fuzz/corpus/<target>/:
# every build replays that folder (ctest -R fuzz_corpus_).
set -uo pipefail
cd "$(dirname "$0")/../.."
SRC="$PWD"
BUILD="${1:-build/asan}"
SECONDS_PER_TARGET="${FUZZ_SECONDS:-60}"
TARGETS="${FUZZ_TARGETS:-ingest_json ingest_protobuf downstream config hq_batch}"

JOBS="${FUZZ_JOBS:-$(nproc)}"

# run_one TARGET: one bounded libFuzzer run; its summary line goes to
# BUILD/fuzz-out/TARGET/result, the details (on failure) to .../report.
run_one() {
  local t="$1"
  local bin="$BUILD/tests/fuzz/${t}_fuzz"
  local out="$BUILD/fuzz-out/$t"
  mkdir -p "$out/corpus"
  rm -f "$out"/crash-* "$out"/leak-* "$out"/timeout-* "$out"/oom-* "$out/result" "$out/report"
  if [[ ! -x "$bin" ]]; then
    printf '%-16s %s\n' "$t" "FAILED: $bin is missing (cmake --preset asan && cmake --build --preset asan)" >"$out/result"
    return
  fi
  # -timeout: one input taking longer than 10 s is a bug (a hang);
  # -rss_limit_mb: so is a parser that needs 2 GiB.
  ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:${ASAN_OPTIONS:-}" \
    UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}" \
    "$bin" -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$out/" "$out/corpus" "$SRC/tests/fuzz/corpus/$t" \
    >"$out/log" 2>&1
  local rc=$?
  local execs secs rate files bytes artifacts
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/log" | tail -1)
  secs=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$out/log" | tail -1)
  rate=$((${execs:-0} / ${secs:-1} ))
  files=$(find "$out/corpus" "$SRC/tests/fuzz/corpus/$t" -type f | wc -l)
  bytes=$(find "$out/corpus" "$SRC/tests/fuzz/corpus/$t" -type f -printf '%s\n' |
          awk '{s+=$1} END {print s+0}')
  artifacts=$(ls "$out"/crash-* "$out"/leak-* "$out"/timeout-* "$out"/oom-* 2>/dev/null)
  if [[ $rc -ne 0 || -n "$artifacts" ]]; then
    printf '%-16s %10s %8s %10s %9s %s\n' "$t" "${execs:-?}" "$rate" "$files" "$bytes" "FAILED (exit $rc)" >"$out/result"
    {
      grep -E -A25 '^==[0-9]+==ERROR|runtime error|fuzz check failed|ALARM|out-of-memory' \
        "$out/log" | head -60
      for a in $artifacts; do echo "  input kept: $a  (replay: $bin $a)"; done
    } >"$out/report"
  else
    printf '%-16s %10s %8s %10s %9s %s\n' "$t" "$execs" "$rate" "$files" "$bytes" ok >"$out/result"
  fi
}

# FUZZ_JOBS targets at a time (default: one per core); the summary is
# printed in target order once all have finished.
running=0
for t in $TARGETS; do
  run_one "$t" &
  running=$((running + 1))
  if (( running >= JOBS )); then wait -n; running=$((running - 1)); fi
done
wait

failed=0
printf '%-16s %10s %8s %10s %9s %s\n' target executions exec/s corpus bytes result
for t in $TARGETS; do
  out="$BUILD/fuzz-out/$t"
  cat "$out/result"
  if ! grep -q ' ok$' "$out/result"; then
    failed=1
    [[ -f "$out/report" ]] && cat "$out/report"
  fi
done
exit $failed
