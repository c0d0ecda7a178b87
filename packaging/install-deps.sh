#!/usr/bin/env bash
# Installs every build and test dependency of storegw from Debian's archive.
# Safe to run again: when every package is already installed it does nothing
# (no apt-get update, no network). Needs root (or sudo) only when something
# is missing.
set -euo pipefail

PKGS=(
  build-essential cmake ninja-build pkg-config git
  libsqlite3-dev sqlite3 zlib1g-dev
  libprotobuf-dev protobuf-compiler
  libpaho-mqtt-dev libpaho-mqttpp-dev libssl-dev openssl
  libcurl4-openssl-dev
  libcpp-httplib-dev libtomlplusplus-dev libcli11-dev libspdlog-dev libfmt-dev
  libsystemd-dev
  doctest-dev
  mosquitto mosquitto-clients
  python3 curl util-linux mount
  clang-format clang libclang-rt-14-dev
  lintian rpm cpio elfutils systemd man-db
  chromium
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PKGS[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
# The mosquitto package enables a system broker on :1883; tests start their
# own brokers on free ports, so the system one is left as the admin set it.
echo "install-deps: done"
