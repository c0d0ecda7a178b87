#!/usr/bin/env bash
# Installs every build and test dependency of storegw from Debian's archive,
# and (as root) the system user the PostgreSQL tests run their servers as.
# Safe to run again: when every package is already installed and the user
# exists it does nothing (no apt-get update, no network). Needs root (or
# sudo) only when a package is missing.
#
#   packaging/install-deps.sh                   the packages below (amd64 build)
#   packaging/install-deps.sh --arm64 [SYSROOT] the same, then what the arm64
#       cross build needs (packaging/build-arm64.sh): the cross compiler and
#       qemu-user-static on this machine, and a sysroot of the arm64
#       libraries (default build/arm64/sysroot). See install_arm64 below.
set -euo pipefail

ARM64=0
ARM64_SYSROOT=""
if [ "${1:-}" = "--arm64" ]; then
  ARM64=1
  ARM64_SYSROOT="${2:-$(cd "$(dirname "$0")/.." && pwd)/build/arm64/sysroot}"
elif [ $# -gt 0 ]; then
  echo "usage: $0 [--arm64 [SYSROOT]]" >&2
  exit 2
fi

PKGS=(
  build-essential cmake ninja-build pkg-config git
  libsqlite3-dev sqlite3 zlib1g-dev
  # zstd batch payloads (uplink.compression = "zstd"), both ends.
  libzstd-dev
  libprotobuf-dev protobuf-compiler
  libpaho-mqtt-dev libpaho-mqttpp-dev libssl-dev openssl
  libcurl4-openssl-dev
  libcpp-httplib-dev libtomlplusplus-dev libcli11-dev libspdlog-dev libfmt-dev
  libsystemd-dev
  doctest-dev
  # RapidJSON (header-only): the device API's strict JSON check (RFC 8259,
  # repeated keys, byte offsets) before protobuf's lenient JSON parser.
  rapidjson-dev
  mosquitto mosquitto-clients
  python3 curl util-linux mount
  clang-format clang libclang-rt-14-dev
  lintian rpm cpio elfutils systemd man-db
  chromium
  # storegw-hq's store (sync/hq/pg: libpq) and the private PostgreSQL 15
  # servers its tests start (tests/common/postgres.h: initdb, postgres, psql).
  postgresql-15 libpq-dev
  # promtool (/usr/bin/promtool), for the tests of the shipped alerting rules
  # and dashboard (packaging/ops/, tests/packaging/ops_test.py). Debian has it
  # only in the server's package; the server it would start is stopped below.
  prometheus
)

# PostgreSQL refuses to run as root, and CI runs as root: tests run as root
# then run initdb and postgres as this unprivileged system user (no login,
# no home). Tests run as any other user run them as that user.
PGTEST_USER=storegw-pgtest

# As root: creates PGTEST_USER when it is missing. Otherwise nothing.
ensure_pgtest_user() {
  if [ "$(id -u)" -ne 0 ] || id -u "$PGTEST_USER" >/dev/null 2>&1; then return 0; fi
  echo "install-deps: creating system user $PGTEST_USER (runs the tests' PostgreSQL servers)"
  useradd --system --no-create-home --home-dir /nonexistent \
    --shell /usr/sbin/nologin "$PGTEST_USER"
}

# Runs a command as root (through sudo when not root already).
as_root() {
  if [ "$(id -u)" -ne 0 ]; then sudo "$@"; else "$@"; fi
}

# Sets `missing` to those of the named packages that are not installed.
missing_packages() {
  missing=()
  local p
  for p in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
      missing+=("$p")
    fi
  done
}

install_plain() {
  missing_packages "${PKGS[@]}"

  if [ ${#missing[@]} -eq 0 ]; then
    echo "install-deps: all ${#PKGS[@]} packages present"
    ensure_pgtest_user
    return 0
  fi

  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq
  as_root apt-get install -y -qq --no-install-recommends "${missing[@]}"
  # The mosquitto package enables a system broker on :1883; tests start their
  # own brokers on free ports, so the system one is left as the admin set it.
  # Likewise the postgresql package's own cluster (port 5432, when the
  # package's scripts created one): the tests start their own servers.
  # The prometheus package is here for promtool only: when this run installed
  # it, its server (enabled by the package, on :9090) is stopped and disabled.
  # A prometheus installed before is left as the admin set it.
  if [[ " ${missing[*]} " == *" prometheus "* ]]; then
    echo "install-deps: stopping and disabling the prometheus service (only promtool is needed)"
    if [ -d /run/systemd/system ]; then
      as_root systemctl disable --now prometheus.service >/dev/null 2>&1 || true
    elif [ -x /etc/init.d/prometheus ]; then
      as_root /etc/init.d/prometheus stop >/dev/null 2>&1 || true
      as_root update-rc.d prometheus disable >/dev/null 2>&1 || true
    fi
  fi
  ensure_pgtest_user
  echo "install-deps: done"
}

install_plain
if [ "$ARM64" = 1 ]; then
  source "$(dirname "$0")/arm64-deps.sh"
  install_arm64 "$ARM64_SYSROOT"
fi
