#!/usr/bin/env bash
# The README's test command: installs the build and test dependencies
# (packaging/install-deps.sh, a no-op when present), builds storegw, runs the
# whole suite, then builds again with AddressSanitizer+UBSan and runs the
# unit tests under it. Exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."

bash packaging/install-deps.sh

JOBS="${JOBS:-$(nproc)}"

echo "== build (RelWithDebInfo)"
cmake --preset default >/dev/null
cmake --build --preset default -j "$JOBS"

echo "== tests (all)"
ctest --preset default -j "$JOBS"

echo "== unit tests under ASan+UBSan"
cmake --preset asan >/dev/null
cmake --build --preset asan -j "$JOBS"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --preset asan -j "$JOBS"
