#!/usr/bin/env bash
# The README's run command: installs the dependencies (no-op when present),
# builds the storegw binary and runs the daemon on its embedded defaults
# (HTTP on 127.0.0.1:8080, journal in ./storegw-data, uplink to
# tcp://127.0.0.1:1883 buffering offline while no broker is there).
# Extra arguments go to `storegw run`, e.g. --config FILE. Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."

bash packaging/install-deps.sh
cmake --preset default >/dev/null
cmake --build --preset default --target storegw -j "${JOBS:-$(nproc)}"
exec build/default/gateway/storegw run "$@"
