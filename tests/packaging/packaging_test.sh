#!/usr/bin/env bash
# Tests of the storegw deb and rpm, run by ctest (see CMakeLists.txt):
#
#   packaging_test.sh build   BIN_DIR   cpack -G DEB and -G RPM into BIN_DIR/packaging/test-out
#   packaging_test.sh deb     BIN_DIR   lintian, contents, control files, dependencies, binary
#   packaging_test.sh rpm     BIN_DIR   rpm -qpl / -qpc / -qpR / --scripts / debuginfo
#   packaging_test.sh install BIN_DIR   dpkg -i / upgrade / -r / -P on this machine, the
#                                       installed binary and unit, and what purge keeps
#
# Environment (from CMakeLists.txt): STOREGW_VERSION, STOREGW_PACKAGING (ON/OFF),
# STOREGW_DEB_DEBUG (ON/OFF), STOREGW_SOURCE_DIR, STOREGW_EXE (build-tree binary),
# STOREGW_HQ_EXE (build-tree storegw-hq; unset in a build without it).
#
# Each mode does the same for the second package of the tree, storegw-hq
# (head office's receiver, packaging/hq/), when the build has it: built from
# BIN_DIR/CPackConfig-storegw-hq.cmake, checked with lintian, rpm and
# dpkg -i / upgrade / -r / -P like storegw.
#
# The install mode needs root (it installs a package) and refuses to run when
# storegw is already installed or /var/lib/storegw exists: it must not touch
# a real installation. It always purges what it installed, also on failure,
# and removes the storegw user and data directory it created. Every step is
# bounded by `timeout`.
set -euo pipefail

MODE=${1:?mode}
BIN=${2:?binary dir}
: "${STOREGW_VERSION:?}" "${STOREGW_SOURCE_DIR:?}" "${STOREGW_EXE:?}"
: "${STOREGW_PACKAGING:=OFF}" "${STOREGW_DEB_DEBUG:=OFF}"
OUT=$BIN/packaging/test-out
DEB_ARCH=$(dpkg --print-architecture)
RPM_ARCH=$(uname -m)
DEB=$OUT/deb/storegw_${STOREGW_VERSION}-1_${DEB_ARCH}.deb
DDEB=$OUT/deb/storegw-dbgsym_${STOREGW_VERSION}-1_${DEB_ARCH}.ddeb
RPM=$OUT/rpm/storegw-${STOREGW_VERSION}-1.${RPM_ARCH}.rpm
RPM_DEBUG=$OUT/rpm/storegw-debuginfo-${STOREGW_VERSION}-1.${RPM_ARCH}.rpm
# storegw-hq: packaged when the build has it.
HQ_CONFIG=$BIN/CPackConfig-storegw-hq.cmake
HQ_DEB=$OUT/deb-hq/storegw-hq_${STOREGW_VERSION}-1_${DEB_ARCH}.deb
HQ_DDEB=$OUT/deb-hq/storegw-hq-dbgsym_${STOREGW_VERSION}-1_${DEB_ARCH}.ddeb
HQ_RPM=$OUT/rpm-hq/storegw-hq-${STOREGW_VERSION}-1.${RPM_ARCH}.rpm
HQ_RPM_DEBUG=$OUT/rpm-hq/storegw-hq-debuginfo-${STOREGW_VERSION}-1.${RPM_ARCH}.rpm
have_hq() { [ -n "${STOREGW_HQ_EXE:-}" ] && [ -f "$HQ_CONFIG" ]; }
unset STOREGW_PURGE_FORCE

failures=0
pass() { echo "ok: $*"; }
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}
die() {
  echo "FAIL: $*" >&2
  exit 1
}
# check DESCRIPTION COMMAND...: runs COMMAND, passes when it exits 0.
check() {
  local what=$1
  shift
  if "$@"; then pass "$what"; else fail "$what"; fi
}
# same_lines DESCRIPTION EXPECTED ACTUAL: both newline-separated, order ignored.
same_lines() {
  local e a
  e=$(printf '%s\n' "$2" | sed '/^$/d' | LC_ALL=C sort)
  a=$(printf '%s\n' "$3" | sed '/^$/d' | LC_ALL=C sort)
  if [ "$e" = "$a" ]; then
    pass "$1"
  else
    fail "$1"
    diff <(echo "$e") <(echo "$a") | sed 's/^/    /' >&2 || true
  fi
}
contains() { grep -qF -- "$2" <<<"$1"; }
quiet() { "$@" >/dev/null 2>&1; }
not() { ! "$@"; }
finish() {
  if [ "$failures" -ne 0 ]; then
    echo "$MODE: $failures check(s) failed" >&2
    exit 1
  fi
  echo "$MODE: all checks passed"
}
need_packages() {
  [ -f "$DEB" ] || die "$DEB is missing: the packaging.build test makes it"
  [ -f "$RPM" ] || die "$RPM is missing: the packaging.build test makes it"
  if have_hq; then
    [ -f "$HQ_DEB" ] || die "$HQ_DEB is missing: the packaging.build test makes it"
    [ -f "$HQ_RPM" ] || die "$HQ_RPM is missing: the packaging.build test makes it"
  fi
}

# lib_candidates LIB: the paths dpkg may know a library file by (merged
# /usr: /lib/... and /usr/lib/..., the soname link's target), in order.
lib_candidates() {
  local real
  real=$(readlink -f "$1")
  printf '%s\n' "$1" "${1#/usr}" "/usr$1" "$real" "${real#/usr}" "$(dirname "$1")/$(basename "$real")"
}

# owner_packages LIB...: "LIB PACKAGE" for each LIB a Debian package owns,
# from one `dpkg -S` over every candidate path (it reads dpkg's whole file
# list each time it runs: once, not once per path).
owner_packages() {
  local lib c owners
  local -a all=()
  for lib in "$@"; do mapfile -t -O "${#all[@]}" all < <(lib_candidates "$lib"); done
  owners=$(dpkg -S "${all[@]}" 2>/dev/null || true)
  for lib in "$@"; do
    while IFS= read -r c; do
      local pkg
      pkg=$(awk -v p="$c" '{ i = index($0, ": "); if (substr($0, i + 2) == p) { print substr($0, 1, i - 1); exit } }' <<<"$owners")
      if [ -n "$pkg" ]; then
        echo "$lib ${pkg%%[:,]*}"
        break
      fi
    done < <(lib_candidates "$lib")
  done
}

# depends_on DEPENDS PKG: DEPENDS names PKG or one of the names PKG provides
# (libspdlog1.10 provides libspdlog1.10-fmt9, which its shlibs file names).
depends_on() {
  local name names deps
  names="$2 $(dpkg-query -W -f='${Provides}' "$2" 2>/dev/null | sed 's/([^)]*)//g; s/,/ /g')"
  deps=$(awk -v RS='[,|]' '{ sub(/\(.*/, ""); gsub(/[ \n]/, ""); if ($0 != "") print }' <<<"$1")
  for name in $names; do
    if grep -qxF -- "$name" <<<"$deps"; then
      return 0
    fi
  done
  return 1
}

# NEEDED sonames of an ELF file.
needed_sonames() { readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'; }

# ---------------------------------------------------------------------------
# cpack_all CONFIG SUFFIX: cpack -G DEB and -G RPM of CONFIG into $OUT/deb$SUFFIX
# and $OUT/rpm$SUFFIX.
cpack_all() {
  local config=$1 suffix=$2 gen
  for gen in DEB RPM; do
    echo "== cpack -G $gen --config ${config##*/}"
    if ! (cd "$BIN" && timeout 600 cpack -G "$gen" -B "$OUT/${gen,,}$suffix" --config "$config") \
      >"$OUT/cpack-$gen$suffix.log" 2>&1; then
      cat "$OUT/cpack-$gen$suffix.log" >&2
      die "cpack -G $gen --config $config failed"
    fi
    grep -E 'package: |Warning|Error' "$OUT/cpack-$gen$suffix.log" || true
  done
}

# built_checks DEB DDEB RPM RPM_DEBUG: the packages (and the debug ones that
# go with the build type) are there.
built_checks() {
  check "deb built: $1" test -s "$1"
  check "rpm built: $3" test -s "$3"
  if [ "$STOREGW_DEB_DEBUG" = ON ]; then
    check "deb debug package built: $2" test -s "$2"
  else
    check "no deb debug package without -g" test ! -e "$2"
  fi
  if [ "$STOREGW_PACKAGING" = ON ]; then
    check "rpm debuginfo package built: $4" test -s "$4"
  else
    check "no rpm debuginfo package outside STOREGW_PACKAGING" test ! -e "$4"
  fi
}

mode_build() {
  rm -rf "$OUT"
  mkdir -p "$OUT"
  cpack_all "$BIN/CPackConfig.cmake" ""
  built_checks "$DEB" "$DDEB" "$RPM" "$RPM_DEBUG"
  if have_hq; then
    cpack_all "$HQ_CONFIG" "-hq"
    built_checks "$HQ_DEB" "$HQ_DDEB" "$HQ_RPM" "$HQ_RPM_DEBUG"
  else
    echo "(no storegw-hq in this build: only the storegw packages)"
  fi
  finish
}

# ---------------------------------------------------------------------------
mode_deb() {
  need_packages
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT

  lintian_checks "$DEB"

  echo "== control fields"
  local f
  f=$(dpkg-deb -f "$DEB" Package Version Architecture Section Priority Maintainer Description)
  check "Package: storegw" contains "$f" "Package: storegw"
  check "Version: ${STOREGW_VERSION}-1 (the project version)" contains "$f" "Version: ${STOREGW_VERSION}-1"
  check "Architecture: $DEB_ARCH" contains "$f" "Architecture: $DEB_ARCH"
  local first
  first=$(head -n1 "$STOREGW_SOURCE_DIR/packaging/changelog")
  check "packaging/changelog's newest entry is ${STOREGW_VERSION}-1 ($first)" \
    contains "$first" "storegw (${STOREGW_VERSION}-1) "
  local rpmcl
  rpmcl=$(head -n1 "$STOREGW_SOURCE_DIR/packaging/rpm/changelog")
  check "packaging/rpm/changelog's newest entry is ${STOREGW_VERSION}-1 ($rpmcl)" \
    contains "$rpmcl" " - ${STOREGW_VERSION}-1"

  echo "== Depends (shlibdeps) covers every shared library the binary needs"
  dpkg-deb -x "$DEB" "$tmp/root"
  depends_checks "$DEB" "$tmp/root/usr/bin/storegw"

  echo "== contents"
  local files
  files=$(dpkg-deb -c "$DEB" | awk '$1 !~ /^d/ {print $NF}' | sed 's|^\./|/|')
  same_lines "deb file list" "/etc/storegw/storegw.toml
/usr/bin/storegw
/usr/lib/systemd/system/storegw.service
/usr/lib/sysusers.d/storegw.conf
/usr/share/doc/storegw/changelog.Debian.gz
/usr/share/doc/storegw/copyright
/usr/share/lintian/overrides/storegw
/usr/share/man/man1/storegw.1.gz
/usr/share/storegw/grafana/storegw-dashboard.json
/usr/share/storegw/prometheus/storegw-alerts.yml" "$files"
  local owners
  owners=$(dpkg-deb -c "$DEB" | awk '{print $2}' | sort -u)
  same_lines "every file root/root" "root/root" "$owners"
  ops_files_checks "$tmp/root" deb

  echo "== control files"
  dpkg-deb -e "$DEB" "$tmp/control"
  same_lines "conffiles" "/etc/storegw/storegw.toml" "$(cat "$tmp/control/conffiles")"
  local s
  for s in postinst prerm postrm; do
    check "$s is executable" test -x "$tmp/control/$s"
    check "$s parses (sh -n)" sh -n "$tmp/control/$s"
    check "$s is the one in packaging/deb" cmp -s "$tmp/control/$s" "$STOREGW_SOURCE_DIR/packaging/deb/$s"
  done

  echo "== packaged config"
  local cfg=$tmp/root/etc/storegw/storegw.toml
  check "config sets data_dir = \"/var/lib/storegw\"" grep -qx 'data_dir = "/var/lib/storegw"' "$cfg"
  # Otherwise it is packaging/storegw.toml, line for line.
  local d
  d=$(diff "$STOREGW_SOURCE_DIR/packaging/storegw.toml" "$cfg" | grep '^[<>]' || true)
  same_lines "config differs from packaging/storegw.toml only in data_dir" \
    "$(grep '^#data_dir = ' "$STOREGW_SOURCE_DIR/packaging/storegw.toml" | sed 's/^/< /')
> data_dir = \"/var/lib/storegw\"" "$d"
  check "the build's storegw accepts the packaged config" \
    quiet timeout 20 "$STOREGW_EXE" config check --config "$cfg"

  echo "== unit file"
  local unit=$tmp/root/usr/lib/systemd/system/storegw.service
  local k
  for k in 'Type=notify' 'WatchdogSec=30s' 'Restart=on-failure' 'User=storegw' 'Group=storegw' \
    'StateDirectory=storegw' 'ExecStart=/usr/bin/storegw run --config /etc/storegw/storegw.toml' \
    'ProtectSystem=strict' 'ProtectHome=yes' 'PrivateTmp=yes' 'NoNewPrivileges=yes' \
    'CapabilityBoundingSet=' 'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX' \
    'SystemCallFilter=@system-service' 'WantedBy=multi-user.target'; do
    check "unit has $k" grep -qxF -- "$k" "$unit"
  done
  check "unit has no ExecReload (the daemon does not reload)" test "$(grep -c '^ExecReload' "$unit")" = 0

  echo "== binary"
  binary_checks "$tmp/root/usr/bin/storegw" "$DDEB" storegw "$tmp/dbg"
  if have_hq; then
    hq_deb_checks
  fi
  finish
}

# ops_files_checks ROOT KIND: the ops files (packaging/ops/, see docs/ops.md) in
# the unpacked package ROOT are the ones of the source tree, mode 0644.
ops_files_checks() {
  local root=$1 kind=$2 f
  echo "== ops files in the $kind"
  for f in prometheus/storegw-alerts.yml:storegw-alerts.yml \
    grafana/storegw-dashboard.json:storegw-dashboard.json; do
    local installed=$root/usr/share/storegw/${f%%:*} source=$STOREGW_SOURCE_DIR/packaging/ops/${f#*:}
    check "$kind: /usr/share/storegw/${f%%:*} is packaging/ops/${f#*:}" cmp -s "$installed" "$source"
    check "$kind: /usr/share/storegw/${f%%:*} is mode 644" test "$(stat -c %a "$installed" 2>/dev/null)" = 644
  done
}

# lintian_checks DEB: no error, no warning (--pedantic; information is shown).
lintian_checks() {
  echo "== lintian $1"
  local lint rc=0
  lint=$(timeout 300 lintian --display-info --pedantic --tag-display-limit 0 "$1" 2>&1) || rc=$?
  printf '%s\n' "$lint" | sed 's/^/    /'
  check "lintian ran (exit $rc; 1 means errors)" test "$rc" -le 1
  if grep -q '^E: ' <<<"$lint"; then fail "lintian reports errors"; else pass "lintian: no errors"; fi
  if grep -q '^W: ' <<<"$lint"; then fail "lintian reports warnings"; else pass "lintian: no warnings"; fi
}

# The storegw-hq deb, like storegw's.
hq_deb_checks() {
  echo "== storegw-hq deb"
  lintian_checks "$HQ_DEB"
  local f
  f=$(dpkg-deb -f "$HQ_DEB" Package Version Architecture Section Suggests)
  check "Package: storegw-hq" grep -qx 'Package: storegw-hq' <<<"$f"
  check "Version: ${STOREGW_VERSION}-1" contains "$f" "Version: ${STOREGW_VERSION}-1"
  check "Architecture: $DEB_ARCH" contains "$f" "Architecture: $DEB_ARCH"
  check "Suggests: postgresql, mosquitto (they may run elsewhere)" \
    contains "$f" "Suggests: postgresql (>= 15), mosquitto"
  check "packaging/hq/changelog's newest entry is ${STOREGW_VERSION}-1" \
    contains "$(head -n1 "$STOREGW_SOURCE_DIR/packaging/hq/changelog")" "storegw-hq (${STOREGW_VERSION}-1) "
  check "packaging/hq/rpm/changelog's newest entry is ${STOREGW_VERSION}-1" \
    contains "$(head -n1 "$STOREGW_SOURCE_DIR/packaging/hq/rpm/changelog")" " - ${STOREGW_VERSION}-1"

  echo "== storegw-hq Depends covers every shared library of storegw-hq"
  dpkg-deb -x "$HQ_DEB" "$tmp/hq"
  depends_checks "$HQ_DEB" "$tmp/hq/usr/bin/storegw-hq"
  check "Depends has libpq5 (the database)" contains "$(dpkg-deb -f "$HQ_DEB" Depends)" "libpq5"

  echo "== storegw-hq contents"
  local files
  files=$(dpkg-deb -c "$HQ_DEB" | awk '$1 !~ /^d/ {print $NF}' | sed 's|^\./|/|')
  same_lines "storegw-hq deb file list" "/etc/storegw-hq/storegw-hq.toml
/usr/bin/storegw-hq
/usr/lib/systemd/system/storegw-hq.service
/usr/lib/sysusers.d/storegw-hq.conf
/usr/share/doc/storegw-hq/changelog.Debian.gz
/usr/share/doc/storegw-hq/copyright
/usr/share/lintian/overrides/storegw-hq
/usr/share/man/man1/storegw-hq.1.gz" "$files"
  same_lines "every file root/root" "root/root" "$(dpkg-deb -c "$HQ_DEB" | awk '{print $2}' | sort -u)"

  echo "== storegw-hq control files"
  dpkg-deb -e "$HQ_DEB" "$tmp/hq-control"
  same_lines "conffiles" "/etc/storegw-hq/storegw-hq.toml" "$(cat "$tmp/hq-control/conffiles")"
  local s
  for s in postinst prerm postrm; do
    check "$s is executable" test -x "$tmp/hq-control/$s"
    check "$s parses (sh -n)" sh -n "$tmp/hq-control/$s"
    check "$s is the one in packaging/hq/deb" \
      cmp -s "$tmp/hq-control/$s" "$STOREGW_SOURCE_DIR/packaging/hq/deb/$s"
  done

  echo "== storegw-hq packaged config"
  local cfg=$tmp/hq/etc/storegw-hq/storegw-hq.toml
  check "config is packaging/hq/storegw-hq.toml" cmp -s "$cfg" "$STOREGW_SOURCE_DIR/packaging/hq/storegw-hq.toml"
  check "the build's storegw-hq accepts the packaged config" \
    quiet timeout 20 "$STOREGW_HQ_EXE" config check --config "$cfg"
  # Every key of the config is documented in it (commented out at its default).
  local key leaf effective
  effective=$(timeout 20 "$STOREGW_HQ_EXE" config check --config "$cfg" 2>/dev/null)
  while read -r key; do
    leaf=${key%% = *}
    check "packaged config documents $leaf" grep -qE "^#$leaf = " "$cfg"
  done < <(grep -E '^[a-z_]+ = ' <<<"$effective")

  echo "== storegw-hq unit file"
  local unit=$tmp/hq/usr/lib/systemd/system/storegw-hq.service k
  for k in 'Type=notify' 'WatchdogSec=30s' 'Restart=on-failure' 'User=storegw-hq' \
    'Group=storegw-hq' 'ExecStart=/usr/bin/storegw-hq run --config /etc/storegw-hq/storegw-hq.toml' \
    'ProtectSystem=strict' 'ProtectHome=yes' 'PrivateTmp=yes' 'NoNewPrivileges=yes' \
    'CapabilityBoundingSet=' 'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX' \
    'SystemCallFilter=@system-service' 'WantedBy=multi-user.target'; do
    check "unit has $k" grep -qxF -- "$k" "$unit"
  done
  check "unit has no ExecReload (storegw-hq does not reload)" test "$(grep -c '^ExecReload' "$unit")" = 0
  check "unit writes nowhere (no StateDirectory, no ReadWritePaths)" \
    test "$(grep -cE '^(StateDirectory|ReadWritePaths)' "$unit")" = 0

  echo "== storegw-hq binary"
  binary_checks "$tmp/hq/usr/bin/storegw-hq" "$HQ_DDEB" storegw-hq "$tmp/hq-dbg"
  check "storegw-hq links libpq" grep -qx 'libpq.so.5' <<<"$(needed_sonames "$tmp/hq/usr/bin/storegw-hq")"
  check "storegw (the gateway) does not" not grep -qx 'libpq.so.5' <<<"$(needed_sonames "$tmp/root/usr/bin/storegw")"
}

# depends_checks DEB BINARY: DEB's Depends names the package of every shared
# library BINARY (extracted from DEB) needs, and not mosquitto.
depends_checks() {
  local deb=$1 exe=$2 depends soname lib pkg
  depends=$(dpkg-deb -f "$deb" Depends)
  echo "    Depends: $depends"
  check "no mosquitto in Depends (not needed at run time)" not contains "$depends" "mosquitto"
  local -a sonames=() libs=()
  local owners
  mapfile -t sonames < <(needed_sonames "$exe")
  for soname in "${sonames[@]}"; do
    # (awk reads to the end: an early exit would SIGPIPE ldconfig under pipefail)
    libs+=("$(ldconfig -p | awk -v s="$soname" '$1 == s && lib == "" { lib = $NF } END { print lib }')")
  done
  owners=$(owner_packages "${libs[@]}")
  local i
  for i in "${!sonames[@]}"; do
    soname=${sonames[$i]}
    lib=${libs[$i]}
    pkg=$(awk -v l="$lib" '$1 == l { print $2; exit }' <<<"$owners")
    if [ -z "$pkg" ]; then
      fail "no Debian package owns $soname ($lib)"
    elif depends_on "$depends" "$pkg"; then
      pass "Depends has $pkg or what it provides (for $soname)"
    else
      fail "Depends lacks $pkg (for $soname)"
    fi
  done
}

# binary_checks BINARY DDEB PACKAGE DIR: hardening, stripping, and the debug
# file in DDEB (unpacked into DIR) when there is a debug package.
binary_checks() {
  local bin=$1 ddeb=$2 package=$3 dbgdir=$4
  check "PIE (ELF type DYN)" bash -c "readelf -h '$bin' | grep -q 'Type:.*DYN'"
  check "full RELRO: GNU_RELRO segment" bash -c "readelf -lW '$bin' | grep -q GNU_RELRO"
  check "full RELRO: BIND_NOW" bash -c "readelf -d '$bin' | grep -qE 'BIND_NOW|FLAGS_1.*NOW'"
  if [ "$STOREGW_DEB_DEBUG" = ON ]; then
    check "stripped: no .debug_info" bash -c "! readelf -SW '$bin' | grep -q '\.debug_info'"
    check "stripped: no .symtab" bash -c "! readelf -SW '$bin' | grep -q '\.symtab'"
    check "has .gnu_debuglink" bash -c "readelf -SW '$bin' | grep -q '\.gnu_debuglink'"
    local id
    id=$(readelf -n "$bin" | sed -n 's/.*Build ID: \([0-9a-f]*\).*/\1/p')
    check "binary has a build id" test -n "$id"
    dpkg-deb -x "$ddeb" "$dbgdir"
    local dbgfile=$dbgdir/usr/lib/debug/.build-id/${id:0:2}/${id:2}.debug
    check "debug package has usr/lib/debug/.build-id/${id:0:2}/${id:2}.debug" test -f "$dbgfile"
    check "debug file has .debug_info" bash -c "readelf -SW '$dbgfile' 2>/dev/null | grep -q '\.debug_info'"
    check "debug package depends on $package (= ${STOREGW_VERSION}-1)" \
      bash -c "dpkg-deb -f '$ddeb' Depends | grep -qF '$package (= ${STOREGW_VERSION}-1)'"
  else
    check "stripped without a debug package: no .symtab" \
      bash -c "! readelf -SW '$bin' | grep -q '\.symtab'"
  fi
  if [ "$STOREGW_PACKAGING" = ON ]; then
    # Release flags: the stack protector and FORTIFY leave their marks in the
    # dynamic symbols (__stack_chk_fail, __*_chk).
    local dyn
    dyn=$(readelf --dyn-syms -W "$bin")
    check "stack protector: imports __stack_chk_fail" contains "$dyn" "__stack_chk_fail"
    local chk
    chk=$(grep -oE '__[a-z_]+_chk\b' <<<"$dyn" | grep -v '^__stack_chk' | sort -u | tr '\n' ' ' || true)
    check "FORTIFY: imports checked functions ($chk)" test -n "$chk"
  fi
}

# ---------------------------------------------------------------------------
mode_rpm() {
  need_packages
  echo "== rpm -qpi"
  rpm -qpi "$RPM" 2>/dev/null | sed 's/^/    /'
  check "name, version, release" test "$(rpm -qp --qf '%{NAME} %{VERSION} %{RELEASE}' "$RPM" 2>/dev/null)" = \
    "storegw ${STOREGW_VERSION} 1"

  echo "== rpm -qpl"
  local files
  files=$(rpm -qpl "$RPM" 2>/dev/null)
  printf '%s\n' "$files" | sed 's/^/    /'
  # /usr/lib/.build-id links come with a debuginfo package.
  same_lines "rpm file list" "/etc/storegw
/etc/storegw/storegw.toml
/usr/bin/storegw
/usr/lib/systemd/system/storegw.service
/usr/lib/sysusers.d/storegw.conf
/usr/share/doc/storegw
/usr/share/doc/storegw/copyright
/usr/share/man/man1/storegw.1.gz
/usr/share/storegw
/usr/share/storegw/grafana
/usr/share/storegw/grafana/storegw-dashboard.json
/usr/share/storegw/prometheus
/usr/share/storegw/prometheus/storegw-alerts.yml" "$(grep -v '^/usr/lib/\.build-id' <<<"$files")"
  local rpmroot
  rpmroot=$(mktemp -d)
  (cd "$rpmroot" && rpm2cpio "$RPM" | cpio -idm --quiet './usr/share/storegw/*')
  ops_files_checks "$rpmroot" rpm
  rm -rf "$rpmroot"

  echo "== rpm -qpc"
  local conf
  conf=$(rpm -qpc "$RPM" 2>/dev/null)
  echo "    $conf"
  same_lines "rpm config files" "/etc/storegw/storegw.toml" "$conf"
  local attrs
  attrs=$(rpm -qp --qf '[%{FILENAMES} %{FILEMODES:perms} %{FILEUSERNAME} %{FILEGROUPNAME} %{FILEFLAGS:fflags}\n]' "$RPM" 2>/dev/null)
  check "config is %config(noreplace), 0640 root:storegw" \
    grep -qx '/etc/storegw/storegw.toml -rw-r----- root storegw cn' <<<"$attrs"
  check "copyright is %license" grep -qE '^/usr/share/doc/storegw/copyright -rw-r--r-- root root [a-z]*l[a-z]*$' <<<"$attrs"
  check "binary 0755 root:root" grep -qE '^/usr/bin/storegw -rwxr-xr-x root root ' <<<"$attrs"

  echo "== rpm -qpR"
  local req
  req=$(rpm -qpR "$RPM" 2>/dev/null)
  printf '%s\n' "$req" | sed 's/^/    /'
  local r
  for r in shadow-utils /bin/sh; do
    check "Requires: $r" grep -qx -- "$r" <<<"$req"
  done
  check "no Requires on mosquitto" not grep -q mosquitto <<<"$req"
  requires_checks "$RPM" storegw "$req"

  echo "== rpm scripts and changelog"
  local scripts
  scripts=$(rpm -qp --scripts "$RPM" 2>/dev/null)
  check "%pre creates the storegw user" grep -q 'useradd -r -g storegw -d /var/lib/storegw' <<<"$scripts"
  check "%post enables the service on install" grep -q 'systemctl enable storegw.service' <<<"$scripts"
  check "%preun stops it on erase" grep -q 'systemctl stop storegw.service' <<<"$scripts"
  check "%postun restarts it after an upgrade" grep -q 'systemctl try-restart storegw.service' <<<"$scripts"
  check "systemctl calls are guarded by /run/systemd/system" grep -q '/run/systemd/system' <<<"$scripts"
  check "%changelog names ${STOREGW_VERSION}-1" \
    bash -c "rpm -qp --changelog '$RPM' 2>/dev/null | head -n1 | grep -q -- '- ${STOREGW_VERSION}-1'"

  if [ "$STOREGW_PACKAGING" = ON ]; then
    echo "== debuginfo rpm"
    local dfiles
    dfiles=$(rpm -qpl "$RPM_DEBUG" 2>/dev/null)
    check "debuginfo has the binary's debug file" grep -q '^/usr/lib/debug/usr/bin/storegw.*\.debug$' <<<"$dfiles"
    check "debuginfo has the sources" grep -q "^/usr/src/debug/storegw-${STOREGW_VERSION}/src_0/gateway/main.cc$" <<<"$dfiles"
  fi
  if have_hq; then
    hq_rpm_checks
  fi
  finish
}

# requires_checks RPM BINARY_NAME REQUIRES: per NEEDED library of
# /usr/bin/BINARY_NAME in RPM, rpm's own soname requirement and the Fedora
# package name from STOREGW_RPM_NAME_MAP (cmake/packaging.cmake); and the
# binary is stripped.
requires_checks() {
  local rpm=$1 exe=$2 req=$3 dir soname base name
  dir=$(mktemp -d)
  (cd "$dir" && rpm2cpio "$rpm" | cpio -idm --quiet "./usr/bin/$exe")
  for soname in $(needed_sonames "$dir/usr/bin/$exe"); do
    check "Requires: $soname (automatic)" grep -q "^${soname//./\\.}(" <<<"$req"
    base=${soname%%.so*}
    if ! name=$(tr ',' '\n' <<<"${STOREGW_RPM_NAME_MAP:?}" |
      awk -F= -v b="$base" '$1 == b && !found { print $2; found = 1 } END { exit !found }'); then
      fail "no Fedora package name for $soname in STOREGW_RPM_NAME_MAP"
    elif [ -n "$name" ]; then
      check "Requires: $name (Fedora package of $soname)" grep -qx -- "$name" <<<"$req"
    fi
  done
  check "rpm binary is stripped" bash -c "! readelf -SW '$dir/usr/bin/$exe' | grep -q '\.debug_info'"
  rm -rf "$dir"
}

# The storegw-hq rpm, like storegw's.
hq_rpm_checks() {
  echo "== storegw-hq rpm"
  check "name, version, release" test "$(rpm -qp --qf '%{NAME} %{VERSION} %{RELEASE}' "$HQ_RPM" 2>/dev/null)" = \
    "storegw-hq ${STOREGW_VERSION} 1"
  local files
  files=$(rpm -qpl "$HQ_RPM" 2>/dev/null)
  same_lines "storegw-hq rpm file list" "/etc/storegw-hq
/etc/storegw-hq/storegw-hq.toml
/usr/bin/storegw-hq
/usr/lib/systemd/system/storegw-hq.service
/usr/lib/sysusers.d/storegw-hq.conf
/usr/share/doc/storegw-hq
/usr/share/doc/storegw-hq/copyright
/usr/share/man/man1/storegw-hq.1.gz" "$(grep -v '^/usr/lib/\.build-id' <<<"$files")"
  same_lines "storegw-hq rpm config files" "/etc/storegw-hq/storegw-hq.toml" "$(rpm -qpc "$HQ_RPM" 2>/dev/null)"
  local attrs
  attrs=$(rpm -qp --qf '[%{FILENAMES} %{FILEMODES:perms} %{FILEUSERNAME} %{FILEGROUPNAME} %{FILEFLAGS:fflags}\n]' "$HQ_RPM" 2>/dev/null)
  check "config is %config(noreplace), 0640 root:storegw-hq" \
    grep -qx '/etc/storegw-hq/storegw-hq.toml -rw-r----- root storegw-hq cn' <<<"$attrs"
  check "copyright is %license" grep -qE '^/usr/share/doc/storegw-hq/copyright -rw-r--r-- root root [a-z]*l[a-z]*$' <<<"$attrs"
  check "binary 0755 root:root" grep -qE '^/usr/bin/storegw-hq -rwxr-xr-x root root ' <<<"$attrs"
  local req r
  req=$(rpm -qpR "$HQ_RPM" 2>/dev/null)
  for r in shadow-utils /bin/sh libpq; do
    check "Requires: $r" grep -qx -- "$r" <<<"$req"
  done
  check "no Requires on mosquitto or postgresql (they may run elsewhere)" \
    not grep -qE 'mosquitto|postgresql' <<<"$req"
  requires_checks "$HQ_RPM" storegw-hq "$req"
  local scripts
  scripts=$(rpm -qp --scripts "$HQ_RPM" 2>/dev/null)
  check "%pre creates the storegw-hq user" grep -q 'useradd -r -g storegw-hq -d /nonexistent' <<<"$scripts"
  check "%post enables the service on install" grep -q 'systemctl enable storegw-hq.service' <<<"$scripts"
  check "%post does not start it (the database comes first)" not grep -qE '^[^#]*systemctl start' <<<"$scripts"
  check "%preun stops it on erase" grep -q 'systemctl stop storegw-hq.service' <<<"$scripts"
  check "%postun restarts it after an upgrade" grep -q 'systemctl try-restart storegw-hq.service' <<<"$scripts"
  check "%changelog names ${STOREGW_VERSION}-1" \
    bash -c "rpm -qp --changelog '$HQ_RPM' 2>/dev/null | head -n1 | grep -q -- '- ${STOREGW_VERSION}-1'"
  if [ "$STOREGW_PACKAGING" = ON ]; then
    local dfiles
    dfiles=$(rpm -qpl "$HQ_RPM_DEBUG" 2>/dev/null)
    check "debuginfo has storegw-hq's debug file" grep -q '^/usr/lib/debug/usr/bin/storegw-hq.*\.debug$' <<<"$dfiles"
    check "debuginfo has the sources" grep -q "^/usr/src/debug/storegw-hq-${STOREGW_VERSION}/src_0/gateway/hq/main.cc$" <<<"$dfiles"
  fi
}

# ---------------------------------------------------------------------------
# install mode

DATA=/var/lib/storegw
had_user=1
had_hq_user=1
daemon_pid=""

# "install ok installed", "deinstall ok config-files", ...; "not-installed"
# when dpkg does not know the package (any more).
pkg_state() {
  local st
  st=$(dpkg-query -W -f='${Status}' "${1:-storegw}" 2>/dev/null) || st="not-installed"
  case "$st" in *" not-installed") st="not-installed" ;; esac
  echo "$st"
}

# man-db's dpkg trigger rebuilds the manual page index after every dpkg run
# that adds or removes a man page: 4 s each on a quiet machine, 10-15 s
# under the suite's load, and these tests run dpkg some 25 times. While one
# of them runs, the trigger is paused the way man-db itself offers (its
# postinst skips the rebuild when /var/lib/man-db/auto-update is absent:
# debconf man-db/auto-update = false); cleanup puts the file back. A file
# left paused by a test that was killed is put back by the next run.
MANDB_FLAG=/var/lib/man-db/auto-update
MANDB_PAUSED=/var/lib/man-db/auto-update.paused-by-storegw-test
mandb_paused=0
pause_mandb() {
  if [ -e "$MANDB_PAUSED" ] && [ ! -e "$MANDB_FLAG" ]; then mv -f "$MANDB_PAUSED" "$MANDB_FLAG"; fi
  if [ -e "$MANDB_FLAG" ]; then
    mv -f "$MANDB_FLAG" "$MANDB_PAUSED" && mandb_paused=1
  fi
}
resume_mandb() {
  if [ "$mandb_paused" = 1 ] && [ -e "$MANDB_PAUSED" ]; then
    mv -f "$MANDB_PAUSED" "$MANDB_FLAG"
    mandb_paused=0
  fi
}

cleanup() {
  set +e
  resume_mandb
  if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
    kill -KILL "$daemon_pid"
    wait "$daemon_pid" 2>/dev/null
  fi
  if [ "$(pkg_state)" != "not-installed" ]; then
    echo "cleanup: purging storegw"
    local _i out
    for _i in $(seq 1 60); do
      out=$(STOREGW_PURGE_FORCE=1 timeout 120 dpkg -P storegw 2>&1) && break
      grep -q 'lock' <<<"$out" || break
      sleep 5
    done
  fi
  rm -rf "$DATA"
  rm -rf /etc/storegw
  if [ "$had_user" = 0 ] && getent passwd storegw >/dev/null; then
    userdel storegw 2>/dev/null
    getent group storegw >/dev/null && groupdel storegw 2>/dev/null
  fi
  if have_hq; then
    if [ "$(pkg_state storegw-hq)" != "not-installed" ]; then
      echo "cleanup: purging storegw-hq"
      timeout 120 dpkg -P storegw-hq >/dev/null 2>&1
    fi
    rm -rf /etc/storegw-hq
    if [ "$had_hq_user" = 0 ] && getent passwd storegw-hq >/dev/null; then
      userdel storegw-hq 2>/dev/null
      getent group storegw-hq >/dev/null && groupdel storegw-hq 2>/dev/null
    fi
  fi
  rm -rf "${tmp:-/nonexistent-storegw-test}"
}

# dpkg_do NAME ARGS...: runs dpkg (bounded), keeps its output in $tmp/NAME.log.
# While another process (apt) holds dpkg's lock it waits, up to 5 minutes.
dpkg_do() {
  local name=$1 waited=0
  shift
  while :; do
    if timeout 120 "$@" >"$tmp/$name.log" 2>&1; then
      pass "$name"
      return 0
    fi
    if grep -q 'dpkg frontend lock\|lock-frontend\|dpkg status database is locked' "$tmp/$name.log" &&
      [ "$waited" -lt 300 ]; then
      [ "$waited" -gt 0 ] || echo "    (dpkg is locked by another process; waiting)"
      sleep 5
      waited=$((waited + 5))
      continue
    fi
    sed 's/^/    /' "$tmp/$name.log" >&2
    die "$name failed"
  done
}

# The [uplink] section of the daemon's config (run_daemon, start_daemon):
# offline by default (uplink.transport = "none", so nothing is ever delivered).
UPLINK_TOML='transport = "none"'

# start_daemon: starts the installed storegw as the storegw user on the
# package's data dir (sets daemon_pid and daemon_url) and waits until it
# listens; dies with its log when it does not start.
start_daemon() {
  local cfg=$tmp/run.toml log=$tmp/daemon.log
  cat >"$cfg" <<EOF
[gateway]
store_id = "store-up"
gateway_id = "gw-up"
data_dir = "$DATA"
[http]
listen = "127.0.0.1:0"
[uplink]
$UPLINK_TOML
EOF
  chmod 0644 "$cfg"
  setpriv --reuid=storegw --regid=storegw --init-groups -- \
    /usr/bin/storegw run --config "$cfg" >"$log" 2>&1 &
  daemon_pid=$!
  daemon_url=""
  for _ in $(seq 1 200); do
    daemon_url=$(sed -n 's/^storegw: listening on \(http:[^ ]*\) .*/\1/p' "$log")
    [ -n "$daemon_url" ] && break
    kill -0 "$daemon_pid" 2>/dev/null || break
    sleep 0.1
  done
  if [ -z "$daemon_url" ]; then
    sed 's/^/    /' "$log" >&2
    die "the installed storegw did not start as user storegw"
  fi
  pass "installed $(timeout 10 /usr/bin/storegw version) runs as user storegw on $DATA ($daemon_url)"
}

# simulate_sales EVENTS: about EVENTS sales from the installed
# `storegw simulate` into the running daemon.
simulate_sales() {
  local rate=$(($1 * 2))
  if ! timeout 60 /usr/bin/storegw simulate --url "$daemon_url" --lanes 1 --rate "$rate" \
    --duration 500ms --seed "$((RANDOM + 1))" >"$tmp/simulate.log" 2>&1; then
    sed 's/^/    /' "$tmp/simulate.log" "$tmp/daemon.log" >&2
    die "storegw simulate failed"
  fi
  sed 's/^/    /' "$tmp/simulate.log"
}

# stop_daemon: SIGTERM; it must exit 0 within 10 s.
stop_daemon() {
  kill -TERM "$daemon_pid"
  local rc=0
  for _ in $(seq 1 100); do
    kill -0 "$daemon_pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$daemon_pid" 2>/dev/null; then
    die "storegw did not exit within 10 s of SIGTERM"
  fi
  wait "$daemon_pid" || rc=$?
  daemon_pid=""
  check "storegw exited 0 on SIGTERM" test "$rc" = 0
}

# run_daemon EVENTS: start_daemon, about EVENTS sales when EVENTS > 0, stop_daemon.
run_daemon() {
  start_daemon
  if [ "$1" -gt 0 ]; then simulate_sales "$1"; fi
  stop_daemon
}

# journal_counts EXE: prints "LAST WATERMARK" from `journal verify`.
journal_counts() {
  local out
  out=$(timeout 60 "$1" journal verify --data-dir "$DATA" 2>&1) || {
    echo "$out" >&2
    return 1
  }
  sed -n 's/^journal verify: ok: .*(seq [0-9]*\.\.\([0-9]*\), watermark \([0-9]*\)).*/\1 \2/p' <<<"$out"
}

# claim_machine: one package test at a time on this machine (dpkg has one
# database), and only where storegw is not installed and has no data or
# config: these tests must never touch a real installation.
claim_machine() {
  exec 9>/tmp/storegw-packaging-install-test.lock
  flock -w 300 9 || die "another packaging install test holds /tmp/storegw-packaging-install-test.lock"
  [ "$(pkg_state)" = "not-installed" ] ||
    die "storegw is already installed here ($(pkg_state)); this test will not touch it (dpkg -P storegw first)"
  [ ! -e "$DATA" ] || die "$DATA exists; this test will not mix its journal with it (move it away first)"
  [ ! -e /etc/storegw ] || die "/etc/storegw exists; this test will not touch it (move it away first)"
  getent passwd storegw >/dev/null || had_user=0
}

mode_install() {
  need_packages
  [ "$(id -u)" = 0 ] || die "the install test needs root (it installs the deb with dpkg)"
  claim_machine
  if have_hq; then
    [ "$(pkg_state storegw-hq)" = "not-installed" ] ||
      die "storegw-hq is already installed here ($(pkg_state storegw-hq)); this test will not touch it"
    [ ! -e /etc/storegw-hq ] || die "/etc/storegw-hq exists; this test will not touch it (move it away first)"
    getent passwd storegw-hq >/dev/null || had_hq_user=0
  fi
  tmp=$(mktemp -d)
  chmod 0755 "$tmp"
  trap cleanup EXIT
  trap 'exit 1' TERM INT HUP
  pause_mandb

  echo "== 1. install"
  dpkg_do "dpkg -i" dpkg -i "$DEB"
  check "package state: install ok installed" test "$(pkg_state)" = "install ok installed"
  local v
  v=$(timeout 10 /usr/bin/storegw version)
  check "/usr/bin/storegw version prints 'storegw $STOREGW_VERSION' ($v)" test "$v" = "storegw $STOREGW_VERSION"
  if timeout 20 /usr/bin/storegw config check --config /etc/storegw/storegw.toml >"$tmp/check.out" 2>"$tmp/check.err"; then
    pass "storegw config check --config /etc/storegw/storegw.toml: $(cat "$tmp/check.err")"
  else
    sed 's/^/    /' "$tmp/check.err" >&2
    fail "storegw config check --config /etc/storegw/storegw.toml"
  fi
  check "effective config has data_dir = \"/var/lib/storegw\"" grep -q 'data_dir = "/var/lib/storegw"' "$tmp/check.out"
  check "man page installed" test -s /usr/share/man/man1/storegw.1.gz
  check "ops files installed (/usr/share/storegw/prometheus, /usr/share/storegw/grafana)" \
    test -s /usr/share/storegw/prometheus/storegw-alerts.yml -a -s /usr/share/storegw/grafana/storegw-dashboard.json
  local pw
  pw=$(getent passwd storegw || true)
  check "system user storegw exists ($pw)" test -n "$pw"
  check "storegw is a system user (uid < 1000)" test "$(cut -d: -f3 <<<"$pw")" -lt 1000
  check "storegw's home is $DATA" test "$(cut -d: -f6 <<<"$pw")" = "$DATA"
  check "storegw has no login shell" bash -c "[[ '$(cut -d: -f7 <<<"$pw")' == */nologin ]]"
  check "$DATA is storegw:storegw 750" test "$(stat -c '%U:%G %a' "$DATA")" = "storegw:storegw 750"
  check "config is root:storegw 640" test "$(stat -c '%U:%G %a' /etc/storegw/storegw.toml)" = "root:storegw 640"
  check "config's mode is a dpkg-statoverride" bash -c "dpkg-statoverride --list /etc/storegw/storegw.toml | grep -qE 'root storegw 0?640'"
  check "conffile registered" bash -c "dpkg-query -W -f='\${Conffiles}' storegw | grep -q /etc/storegw/storegw.toml"
  check "service enabled (multi-user.target.wants symlink)" \
    test -L /etc/systemd/system/multi-user.target.wants/storegw.service

  echo "== 2. systemd-analyze on the installed unit"
  local unit=/usr/lib/systemd/system/storegw.service va
  if va=$(timeout 60 systemd-analyze verify "$unit" 2>&1); then
    pass "systemd-analyze verify $unit"
  else
    fail "systemd-analyze verify $unit"
  fi
  [ -z "$va" ] || printf '%s\n' "$va" | sed 's/^/    /'
  if grep -q "storegw" <<<"$va"; then fail "systemd-analyze verify complains about storegw"; fi
  local sec
  sec=$(timeout 60 systemd-analyze security --offline=true --no-pager "$unit" 2>&1 || true)
  printf '%s\n' "$sec" | grep -E '^✗|Overall' | sed 's/^/    /'
  local score
  score=$(sed -n 's/.*Overall exposure level for storegw.service: \([0-9.]*\).*/\1/p' <<<"$sec")
  check "systemd-analyze security score found ($score)" test -n "$score"
  # 0 is best, 10 worst; "OK" is below 2.0 (the unit gets 1.x).
  check "systemd-analyze security exposure $score < 2.0" awk -v s="$score" 'BEGIN { exit !(s + 0 < 2.0) }'

  echo "== 3. a journal with undelivered events, then upgrade"
  run_daemon 40
  local c last wm
  c=$(journal_counts /usr/bin/storegw) || die "journal verify failed"
  read -r last wm <<<"$c"
  check "journal holds undelivered events (seq ..$last, watermark $wm)" test "${last:-0}" -gt "${wm:-0}"
  echo "# local edit kept by upgrades" >>/etc/storegw/storegw.toml
  dpkg_do "dpkg -i (upgrade over itself)" dpkg -i "$DEB"
  check "local config edit survives the upgrade" grep -q '^# local edit kept by upgrades' /etc/storegw/storegw.toml
  check "config still root:storegw 640 after the upgrade" \
    test "$(stat -c '%U:%G %a' /etc/storegw/storegw.toml)" = "root:storegw 640"
  check "journal unchanged by the upgrade" test "$(journal_counts /usr/bin/storegw)" = "$last $wm"

  echo "== 4. remove keeps the journal and the config"
  dpkg_do "dpkg -r" dpkg -r storegw
  check "package state: deinstall ok config-files" test "$(pkg_state)" = "deinstall ok config-files"
  check "/usr/bin/storegw removed" test ! -e /usr/bin/storegw
  check "unit removed" test ! -e "$unit"
  check "ops files removed (/usr/share/storegw)" test ! -e /usr/share/storegw
  check "$DATA/journal.db kept" test -f "$DATA/journal.db"
  check "config kept with the local edit" grep -q '^# local edit kept by upgrades' /etc/storegw/storegw.toml
  check "prerm said events are undelivered" grep -q "undelivered events" "$tmp/dpkg -r.log"
  check "no 'delivered' mark for purge" test ! -e "$DATA/.storegw-removed-delivered"

  echo "== 5. purge removes the config and keeps undelivered events"
  dpkg_do "dpkg -P" dpkg -P storegw
  sed 's/^/    /' "$tmp/dpkg -P.log"
  check "package purged" test "$(pkg_state)" = "not-installed"
  check "/etc/storegw removed" test ! -e /etc/storegw
  check "statoverride removed" bash -c "! dpkg-statoverride --list /etc/storegw/storegw.toml >/dev/null"
  check "$DATA/journal.db kept by purge" test -f "$DATA/journal.db"
  check "purge said why it kept $DATA" grep -q "storegw: kept $DATA: its journal holds events not yet delivered" "$tmp/dpkg -P.log"
  check "the kept journal still verifies with the same events" \
    test "$(journal_counts "$STOREGW_EXE")" = "$last $wm"

  echo "== 6. reinstall keeps the old journal; STOREGW_PURGE_FORCE=1 purges it"
  dpkg_do "dpkg -i (over a kept journal)" dpkg -i "$DEB"
  check "the installed storegw reads the kept journal" test "$(journal_counts /usr/bin/storegw)" = "$last $wm"
  dpkg_do "STOREGW_PURGE_FORCE=1 dpkg -P" env STOREGW_PURGE_FORCE=1 dpkg -P storegw
  check "forced purge removed $DATA" test ! -e "$DATA"

  echo "== 7. nothing undelivered: purge removes the data, unless the journal changed after removal"
  dpkg_do "dpkg -i (fresh)" dpkg -i "$DEB"
  run_daemon 0
  c=$(journal_counts /usr/bin/storegw) || die "journal verify failed"
  read -r last wm <<<"$c"
  check "empty journal (seq ..$last, watermark $wm)" test "$last" = "$wm"
  dpkg_do "dpkg -r (all delivered)" dpkg -r storegw
  check "prerm marked the journal as delivered" test -f "$DATA/.storegw-removed-delivered"
  touch -d '+1 minute' "$DATA/journal.db"
  dpkg_do "dpkg -P (journal changed since removal)" dpkg -P storegw
  check "purge kept $DATA: the journal changed after prerm looked" test -f "$DATA/journal.db"
  check "purge said so" grep -q "storegw: kept $DATA: the journal changed after the package was removed" \
    "$tmp/dpkg -P (journal changed since removal).log"
  dpkg_do "dpkg -i (over the empty journal)" dpkg -i "$DEB"
  dpkg_do "dpkg -P (all delivered)" dpkg -P storegw
  if [ -e "$DATA" ]; then
    fail "purge removed $DATA (nothing undelivered)"
    sed 's/^/    /' "$tmp/dpkg -P (all delivered).log" >&2
    find "$DATA" -maxdepth 1 -printf "    %M %u %s %f\n" >&2
  else
    pass "purge removed $DATA (nothing undelivered)"
  fi
  check "purge said so" grep -q "storegw: removed $DATA (nothing in it was undelivered)" "$tmp/dpkg -P (all delivered).log"

  echo "== 8. $DATA/.purge-ok forces the purge of undelivered events"
  dpkg_do "dpkg -i (fresh again)" dpkg -i "$DEB"
  run_daemon 10
  c=$(journal_counts /usr/bin/storegw) || die "journal verify failed"
  read -r last wm <<<"$c"
  check "journal holds undelivered events (seq ..$last, watermark $wm)" test "$last" -gt "$wm"
  touch "$DATA/.purge-ok"
  dpkg_do "dpkg -P (.purge-ok)" dpkg -P storegw
  check "purge with .purge-ok removed $DATA" test ! -e "$DATA"
  check "the storegw user is kept (Debian does not remove system users)" quiet getent passwd storegw

  if have_hq; then
    hq_install_checks
  fi
  finish
}

# storegw-hq: install, the installed unit, upgrade, remove, purge. It keeps
# nothing on disk but its config; the database is not the package's.
hq_install_checks() {
  echo "== storegw-hq 1. install"
  dpkg_do "dpkg -i storegw-hq" dpkg -i "$HQ_DEB"
  check "package state: install ok installed" test "$(pkg_state storegw-hq)" = "install ok installed"
  local v cfg=/etc/storegw-hq/storegw-hq.toml
  v=$(timeout 10 /usr/bin/storegw-hq version)
  check "/usr/bin/storegw-hq version prints 'storegw-hq $STOREGW_VERSION' ($v)" \
    test "$v" = "storegw-hq $STOREGW_VERSION"
  check "postinst said the database comes first" grep -q "set \[hq\] database in $cfg" "$tmp/dpkg -i storegw-hq.log"
  check "man page installed" test -s /usr/share/man/man1/storegw-hq.1.gz
  local pw
  pw=$(getent passwd storegw-hq || true)
  check "system user storegw-hq exists ($pw)" test -n "$pw"
  check "storegw-hq is a system user (uid < 1000)" test "$(cut -d: -f3 <<<"$pw")" -lt 1000
  check "storegw-hq has no home" test "$(cut -d: -f6 <<<"$pw")" = /nonexistent
  check "storegw-hq has no login shell" bash -c "[[ '$(cut -d: -f7 <<<"$pw")' == */nologin ]]"
  check "config is root:storegw-hq 640" test "$(stat -c '%U:%G %a' "$cfg")" = "root:storegw-hq 640"
  check "config's mode is a dpkg-statoverride" \
    bash -c "dpkg-statoverride --list $cfg | grep -qE 'root storegw-hq 0?640'"
  check "conffile registered" bash -c "dpkg-query -W -f='\${Conffiles}' storegw-hq | grep -q $cfg"
  check "service enabled (multi-user.target.wants symlink)" \
    test -L /etc/systemd/system/multi-user.target.wants/storegw-hq.service
  # The service's user reads its config (and nobody else but root may).
  if setpriv --reuid=storegw-hq --regid=storegw-hq --init-groups -- \
    /usr/bin/storegw-hq config check --config "$cfg" >"$tmp/hq-check.out" 2>"$tmp/hq-check.err"; then
    pass "storegw-hq config check as user storegw-hq: $(cat "$tmp/hq-check.err")"
  else
    sed 's/^/    /' "$tmp/hq-check.err" >&2
    fail "storegw-hq config check --config $cfg as user storegw-hq"
  fi
  check "... but not as another user" not quiet setpriv --reuid=nobody --regid=nogroup --clear-groups -- \
    /usr/bin/storegw-hq config check --config "$cfg"

  echo "== storegw-hq 2. systemd-analyze on the installed unit"
  local unit=/usr/lib/systemd/system/storegw-hq.service va
  if va=$(timeout 60 systemd-analyze verify "$unit" 2>&1); then
    pass "systemd-analyze verify $unit"
  else
    fail "systemd-analyze verify $unit"
  fi
  [ -z "$va" ] || printf '%s\n' "$va" | sed 's/^/    /'
  if grep -q "storegw-hq" <<<"$va"; then fail "systemd-analyze verify complains about storegw-hq"; fi
  local sec score
  sec=$(timeout 60 systemd-analyze security --offline=true --no-pager "$unit" 2>&1 || true)
  printf '%s\n' "$sec" | grep -E '^✗|Overall' | sed 's/^/    /'
  score=$(sed -n 's/.*Overall exposure level for storegw-hq.service: \([0-9.]*\).*/\1/p' <<<"$sec")
  check "systemd-analyze security score found ($score)" test -n "$score"
  check "systemd-analyze security exposure $score < 2.0" awk -v s="$score" 'BEGIN { exit !(s + 0 < 2.0) }'

  echo "== storegw-hq 3. upgrade keeps a local config edit"
  echo "# local edit kept by upgrades" >>"$cfg"
  dpkg_do "dpkg -i storegw-hq (upgrade over itself)" dpkg -i "$HQ_DEB"
  check "local config edit survives the upgrade" grep -q '^# local edit kept by upgrades' "$cfg"
  check "config still root:storegw-hq 640 after the upgrade" \
    test "$(stat -c '%U:%G %a' "$cfg")" = "root:storegw-hq 640"

  echo "== storegw-hq 4. remove keeps the config"
  dpkg_do "dpkg -r storegw-hq" dpkg -r storegw-hq
  check "package state: deinstall ok config-files" test "$(pkg_state storegw-hq)" = "deinstall ok config-files"
  check "/usr/bin/storegw-hq removed" test ! -e /usr/bin/storegw-hq
  check "unit removed" test ! -e "$unit"
  check "config kept with the local edit" grep -q '^# local edit kept by upgrades' "$cfg"

  echo "== storegw-hq 5. purge removes the config"
  dpkg_do "dpkg -P storegw-hq" dpkg -P storegw-hq
  check "package purged" test "$(pkg_state storegw-hq)" = "not-installed"
  check "/etc/storegw-hq removed" test ! -e /etc/storegw-hq
  check "statoverride removed" bash -c "! dpkg-statoverride --list $cfg >/dev/null"
  check "the storegw-hq user is kept (Debian does not remove system users)" quiet getent passwd storegw-hq
}

# ---------------------------------------------------------------------------
# upgrade mode: the first release's package (tests/packaging/fixtures, made
# by make_release_fixture.sh from the commit it names) with a backlog in its
# journal, upgraded to this tree's package, downgraded, upgraded again; then
# the backlog delivered to a deduping HQ: this build's storegw-hq on a
# PostgreSQL and a mosquitto the test starts on free loopback ports.

OLD_VERSION=0.1.0
OLD_SCHEMA=2
FIXTURES=$STOREGW_SOURCE_DIR/tests/packaging/fixtures
OLD_DEB=$FIXTURES/storegw_${OLD_VERSION}-1_${DEB_ARCH}.deb
OLD_RPM=$FIXTURES/storegw-${OLD_VERSION}-1.${RPM_ARCH}.rpm
broker_pid=""
hq_pid=""
pg_data=""

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# PostgreSQL refuses to run as root: as root, its commands run as the test
# user packaging/install-deps.sh creates.
as_pg() {
  if [ "$(id -u)" = 0 ]; then
    setpriv --reuid=storegw-pgtest --regid="$(id -g storegw-pgtest)" --clear-groups -- "$@"
  else
    "$@"
  fi
}
pg_bin() { find /usr/lib/postgresql -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n1; }

upgrade_cleanup() {
  set +e
  local p
  for p in "$hq_pid" "$broker_pid"; do
    if [ -n "$p" ] && kill -0 "$p" 2>/dev/null; then
      kill -TERM "$p"
      for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$p" 2>/dev/null
      wait "$p" 2>/dev/null
    fi
  done
  if [ -n "$pg_data" ] && [ -f "$pg_data/postmaster.pid" ]; then
    as_pg "$(pg_bin)/pg_ctl" -D "$pg_data" stop -m immediate -t 30 >/dev/null 2>&1
    p=$(head -n1 "$pg_data/postmaster.pid" 2>/dev/null)
    [ -n "$p" ] && kill -0 "$p" 2>/dev/null && kill -KILL "$p"
  fi
  cleanup
}

# journal_schema: PRAGMA user_version of the package's journal.
journal_schema() {
  python3 -c 'import sqlite3, sys; print(sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True).execute("PRAGMA user_version").fetchone()[0])' \
    "$DATA/journal.db"
}
# journal_files_digest: sha256 of the journal's content: journal.db and its
# write-ahead log (absent and empty are the same: nothing in it). Not the
# -shm index (SQLite rebuilds it) or journal.lock (the holder's pid).
journal_files_digest() {
  sha256sum <"$DATA/journal.db"
  if [ -s "$DATA/journal.db-wal" ]; then sha256sum <"$DATA/journal.db-wal"; else echo "no wal"; fi
}

# start_hq: mosquitto, PostgreSQL (initdb), storegw-hq (the build tree's).
start_hq() {
  local port=$1 pgport bin
  bin=$(pg_bin)
  [ -x "$bin/initdb" ] || die "no PostgreSQL server under /usr/lib/postgresql (packaging/install-deps.sh installs it)"
  cat >"$tmp/mosquitto.conf" <<EOF
listener $port 127.0.0.1
allow_anonymous true
persistence false
max_queued_messages 0
EOF
  mosquitto -c "$tmp/mosquitto.conf" >"$tmp/mosquitto.log" 2>&1 &
  broker_pid=$!
  mkdir -p "$tmp/pg"
  [ "$(id -u)" != 0 ] || chown storegw-pgtest "$tmp/pg"
  pg_data=$tmp/pg/data
  as_pg "$bin/initdb" -D "$pg_data" -U postgres --auth=trust -E UTF8 --no-sync >"$tmp/initdb.log" 2>&1 ||
    { sed 's/^/    /' "$tmp/initdb.log" >&2; die "initdb failed"; }
  pgport=$(free_port)
  as_pg "$bin/pg_ctl" -D "$pg_data" -l "$tmp/pg/server.log" -w -t 60 \
    -o "-p $pgport -c listen_addresses=127.0.0.1 -k $tmp/pg -c fsync=off" start >/dev/null ||
    { sed 's/^/    /' "$tmp/pg/server.log" >&2; die "PostgreSQL did not start"; }
  PG_URL="postgresql://postgres@127.0.0.1:$pgport/postgres"
  cat >"$tmp/hq.toml" <<EOF
[hq]
database = "$PG_URL"
[mqtt]
url = "tcp://127.0.0.1:$port"
[http]
listen = "127.0.0.1:0"
EOF
  "$STOREGW_HQ_EXE" run --config "$tmp/hq.toml" >"$tmp/hq.log" 2>&1 &
  hq_pid=$!
  local ok=""
  for _ in $(seq 1 300); do
    if grep -q "listening on http://" "$tmp/hq.log"; then ok=1; break; fi
    kill -0 "$hq_pid" 2>/dev/null || break
    sleep 0.1
  done
  [ -n "$ok" ] || { sed 's/^/    /' "$tmp/hq.log" "$tmp/mosquitto.log" >&2; die "storegw-hq did not start"; }
  pass "HQ up: mosquitto on 127.0.0.1:$port, PostgreSQL on 127.0.0.1:$pgport, storegw-hq"
}
hq_sql() { psql "$PG_URL" -X -A -t -v ON_ERROR_STOP=1 -c "$1"; }
# wait_hq_events N: until HQ holds N events of the gateway (60 s at most).
wait_hq_events() {
  local n=0
  for _ in $(seq 1 600); do
    n=$(hq_sql "SELECT count(*) FROM events WHERE gateway_id = 'gw-up'" 2>/dev/null || echo 0)
    [ "$n" -ge "$1" ] && return 0
    sleep 0.1
  done
  echo "    HQ holds $n of $1 events after 60 s" >&2
}

mode_upgrade() {
  need_packages
  [ "$(id -u)" = 0 ] || die "the upgrade test needs root (it installs packages with dpkg)"
  [ -n "${STOREGW_HQ_EXE:-}" ] || die "the upgrade test needs storegw-hq in the build (the deduping HQ)"
  [ -f "$OLD_DEB" ] || die "$OLD_DEB is missing (tests/packaging/make_release_fixture.sh makes it; it exists for amd64 only)"
  [ -f "$OLD_RPM" ] || die "$OLD_RPM is missing (tests/packaging/make_release_fixture.sh makes it)"
  claim_machine
  tmp=$(mktemp -d)
  chmod 0755 "$tmp"
  trap upgrade_cleanup EXIT
  trap 'exit 1' TERM INT HUP
  pause_mandb
  local mqtt_port last0 wm0 last1 wm1 last2 wm2 c schema
  # HQ's broker port, chosen now; nothing listens on it until step 5: the
  # uplink is down, the journal fills.
  mqtt_port=$(free_port)
  UPLINK_TOML="transport = \"mqtt\"
url = \"tcp://127.0.0.1:$mqtt_port\"
ack = \"hq\"
backoff_initial = \"100ms\"
backoff_max = \"1s\""

  echo "== 1. install $OLD_VERSION (the fixture), a backlog while HQ is unreachable"
  dpkg_do "dpkg -i storegw $OLD_VERSION" dpkg -i "$OLD_DEB"
  check "storegw $OLD_VERSION installed" test "$(timeout 10 /usr/bin/storegw version)" = "storegw $OLD_VERSION"
  echo "# local edit kept by upgrades" >>/etc/storegw/storegw.toml
  start_daemon
  simulate_sales 150
  stop_daemon
  c=$(journal_counts /usr/bin/storegw) || die "journal verify ($OLD_VERSION) failed"
  read -r last0 wm0 <<<"$c"
  check "$OLD_VERSION journaled a backlog (seq ..$last0, watermark $wm0)" test "${last0:-0}" -gt 50 -a "${wm0:-1}" = 0
  schema=$(journal_schema)
  check "$OLD_VERSION's journal is schema $OLD_SCHEMA ($schema)" test "$schema" = "$OLD_SCHEMA"

  local digest0
  digest0=$(journal_files_digest)

  echo "== 2. upgrade to $STOREGW_VERSION with dpkg -i"
  # Unattended, as a fleet rollout runs it: keep the local config
  # (--force-confold; without it dpkg asks on a terminal, or fails without one).
  dpkg_do "dpkg -i storegw $STOREGW_VERSION (upgrade)" dpkg -i --force-confold "$DEB"
  check "dpkg upgraded from $OLD_VERSION-1" grep -q "over ($OLD_VERSION-1)" "$tmp/dpkg -i storegw $STOREGW_VERSION (upgrade).log"
  check "package state: install ok installed" test "$(pkg_state)" = "install ok installed"
  check "storegw $STOREGW_VERSION installed" test "$(timeout 10 /usr/bin/storegw version)" = "storegw $STOREGW_VERSION"
  check "local config edit survives the upgrade" grep -q '^# local edit kept by upgrades' /etc/storegw/storegw.toml
  check "the new default config is beside it (dpkg's .dpkg-dist)" test -f /etc/storegw/storegw.toml.dpkg-dist
  check "config still root:storegw 640 after the upgrade" \
    test "$(stat -c '%U:%G %a' /etc/storegw/storegw.toml)" = "root:storegw 640"
  check "the edited $OLD_VERSION config passes $STOREGW_VERSION's config check --strict" \
    quiet timeout 20 /usr/bin/storegw config check --strict --config /etc/storegw/storegw.toml
  # systemd restarts the unit from postinst (deb-systemd-invoke restart on an
  # upgrade); without systemd as PID 1 here, the test restarts it the way
  # the unit runs it and checks postinst would have.
  check "postinst restarts the service on an upgrade" \
    grep -q 'action=restart' /var/lib/dpkg/info/storegw.postinst
  check "the journal's files are unchanged by dpkg" test "$(journal_files_digest)" = "$digest0"
  start_daemon
  schema=$(journal_schema)
  check "$STOREGW_VERSION migrated the journal from schema $OLD_SCHEMA on start (now $schema)" test "$schema" -gt "$OLD_SCHEMA"
  check "the migration is in the log" grep -q "schema" "$tmp/daemon.log"
  simulate_sales 100
  stop_daemon
  c=$(journal_counts /usr/bin/storegw) || die "journal verify ($STOREGW_VERSION) failed after the migration"
  read -r last1 wm1 <<<"$c"
  pass "journal verify ($STOREGW_VERSION): seq ..$last1, watermark $wm1"
  check "the backlog kept every event of $OLD_VERSION and grew (seq ..$last0 -> ..$last1)" test "$last1" -gt "$last0"
  check "nothing delivered yet (HQ unreachable)" test "$wm1" = 0

  echo "== 3. downgrade to $OLD_VERSION: it refuses the newer journal and leaves it untouched"
  local before after
  before=$(journal_files_digest)
  dpkg_do "dpkg -i storegw $OLD_VERSION (downgrade)" dpkg -i --force-confold "$OLD_DEB"
  check "storegw $OLD_VERSION installed again" test "$(timeout 10 /usr/bin/storegw version)" = "storegw $OLD_VERSION"
  local rc=0
  timeout 30 setpriv --reuid=storegw --regid=storegw --init-groups -- \
    /usr/bin/storegw run --config "$tmp/run.toml" >"$tmp/old-run.log" 2>&1 || rc=$?
  sed 's/^/    /' "$tmp/old-run.log"
  check "$OLD_VERSION refuses to start (exit $rc, not killed by the timeout)" test "$rc" != 0 -a "$rc" != 124
  check "... saying the journal is newer than it understands" grep -q "newer than this storegw understands" "$tmp/old-run.log"
  after=$(journal_files_digest)
  if [ "$before" = "$after" ]; then
    pass "the journal's files are byte for byte unchanged"
  else
    fail "the journal's files are byte for byte unchanged"
    diff <(echo "$before") <(echo "$after") | sed 's/^/    /' >&2
  fi

  echo "== 4. upgrade again; HQ comes back; the whole backlog is delivered"
  dpkg_do "dpkg -i storegw $STOREGW_VERSION (re-upgrade)" dpkg -i --force-confold "$DEB"
  start_hq "$mqtt_port"
  start_daemon
  simulate_sales 50
  # The backlog of before the downgrade arrives; the sales of this run are
  # counted once the daemon has stopped (the journal's last seq), and a
  # second start delivers whatever of them was still in flight.
  wait_hq_events "$last1"
  stop_daemon
  c=$(journal_counts /usr/bin/storegw) || die "journal verify failed after delivery"
  read -r last2 wm2 <<<"$c"
  start_daemon
  wait_hq_events "$last2"
  stop_daemon
  c=$(journal_counts /usr/bin/storegw) || die "journal verify failed after delivery"
  read -r last2 wm2 <<<"$c"
  check "the gateway's watermark reached its last seq ($wm2 of $last2)" test "$wm2" = "$last2"
  local rows distinct lo hi applied
  IFS='|' read -r rows distinct lo hi <<<"$(hq_sql "SELECT count(*), count(DISTINCT (epoch, seq)), min(seq), max(seq) FROM events WHERE gateway_id = 'gw-up'")"
  applied=$(hq_sql "SELECT applied_seq FROM gateway_epochs WHERE gateway_id = 'gw-up'")
  echo "    journaled before the upgrade: $last0 (by $OLD_VERSION); before the downgrade: $last1; in all: $last2"
  echo "    at HQ: $rows rows, $distinct distinct (epoch, seq), seq $lo..$hi, applied_seq $applied"
  check "HQ holds every seq 1..$last2 once: no event lost, none applied twice, no gap" \
    test "$rows" = "$last2" -a "$distinct" = "$last2" -a "$lo" = 1 -a "$hi" = "$last2"
  check "HQ applied up to the last seq ($applied)" test "$applied" = "$last2"
  check "one epoch across upgrade, downgrade and re-upgrade" \
    test "$(hq_sql "SELECT count(DISTINCT epoch) FROM events WHERE gateway_id = 'gw-up'")" = 1

  echo "== 5. rpm -U from $OLD_VERSION in a scratch root (rpm --root; no scriptlets: the root has no shell)"
  local root=$tmp/rpmroot
  mkdir -p "$root"
  if ! timeout 120 rpm --root "$root" --initdb >"$tmp/rpm.log" 2>&1 ||
    ! timeout 120 rpm --root "$root" -i --nodeps --noscripts --nosignature "$OLD_RPM" >>"$tmp/rpm.log" 2>&1; then
    sed 's/^/    /' "$tmp/rpm.log" >&2
    fail "rpm -i $OLD_RPM into $root"
  else
    check "rpm: storegw $OLD_VERSION in the scratch root" \
      test "$(rpm --root "$root" -q --qf '%{VERSION}' storegw)" = "$OLD_VERSION"
    echo "# local edit kept by upgrades" >>"$root/etc/storegw/storegw.toml"
    if timeout 120 rpm --root "$root" -U --nodeps --noscripts --nosignature "$RPM" >>"$tmp/rpm.log" 2>&1; then
      pass "rpm -U to $STOREGW_VERSION"
    else
      sed 's/^/    /' "$tmp/rpm.log" >&2
      fail "rpm -U $RPM"
    fi
    check "rpm: storegw $STOREGW_VERSION in the scratch root" \
      test "$(rpm --root "$root" -q --qf '%{VERSION}' storegw)" = "$STOREGW_VERSION"
    check "rpm: the upgraded binary is $STOREGW_VERSION" \
      test "$(timeout 10 "$root/usr/bin/storegw" version)" = "storegw $STOREGW_VERSION"
    check "rpm: local config edit survives the upgrade (%config(noreplace))" \
      grep -q '^# local edit kept by upgrades' "$root/etc/storegw/storegw.toml"
    check "rpm: the new default config is beside it (.rpmnew)" test -f "$root/etc/storegw/storegw.toml.rpmnew"
  fi
  finish
}

case "$MODE" in
build) mode_build ;;
deb) mode_deb ;;
rpm) mode_rpm ;;
install) mode_install ;;
upgrade) mode_upgrade ;;
*) die "unknown mode $MODE (build, deb, rpm, install, upgrade)" ;;
esac
