#!/usr/bin/env bash
# arm64 (aarch64) packages of storegw and storegw-hq, cross-built on an amd64
# Debian 12 machine, and their tests under qemu-user.
#
#   packaging/build-arm64.sh           the packages, under build/arm64/:
#       storegw_<ver>-1_arm64.deb        storegw-dbgsym_<ver>-1_arm64.ddeb
#       storegw-<ver>-1.aarch64.rpm      storegw-debuginfo-<ver>-1.aarch64.rpm
#       storegw-hq_<ver>-1_arm64.deb     storegw-hq-dbgsym_<ver>-1_arm64.ddeb
#       storegw-hq-<ver>-1.aarch64.rpm   storegw-hq-debuginfo-<ver>-1.aarch64.rpm
#     checked: architecture fields, the binaries are aarch64 ELF, Depends
#     (dpkg-shlibdeps against the arm64 libraries) and rpm Requires.
#   packaging/build-arm64.sh --test    builds the tests too and runs them under
#     qemu-user (see run_tests below for what runs and what does not).
#   packaging/build-arm64.sh --unit    only the unit tests (target unit_tests,
#     label "unit") under qemu-user: what CI's arm64 stage runs.
#   packaging/build-arm64.sh --bench   journal_bench under qemu-user
#     (informational: how the code behaves on arm64, not how fast an arm64
#     box is).
# Options combine (--test --bench builds the packages only when neither is
# given, or with --packages).
#
# What it needs it installs through `packaging/install-deps.sh --arm64`: the
# plain dependencies, Debian's cross compiler (crossbuild-essential-arm64),
# qemu-user-static, and a sysroot of the :arm64 libraries in
# build/arm64/sysroot (downloaded and unpacked: no :arm64 package is
# installed on this machine). The build is the release preset's (Release,
# STOREGW_PACKAGING=ON, -Werror, unity) with
# cmake/toolchain-aarch64-linux-gnu.cmake, in build/arm64/build.
#
# Every compile and test run holds /work/build.lock when that file exists
# (a shared machine's build lock); STOREGW_BUILD_LOCK=FILE names another,
# STOREGW_BUILD_LOCK= (empty) runs without one.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD

OUT=$SRC/build/arm64
SYSROOT=$OUT/sysroot
BUILD=$OUT/build
JOBS="${JOBS:-$(nproc)}"
CTEST_JOBS="${CTEST_JOBS:-$((JOBS + 1))}"
LOCK="${STOREGW_BUILD_LOCK-/work/build.lock}"

DO_PACKAGES=0 DO_TEST=0 DO_UNIT=0 DO_BENCH=0 TEST_RC=0
for a in "$@"; do
  case "$a" in
    --packages) DO_PACKAGES=1 ;;
    --test) DO_TEST=1 ;;
    --unit) DO_UNIT=1 ;;
    --bench) DO_BENCH=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "usage: $0 [--packages] [--test | --unit] [--bench]" >&2; exit 2 ;;
  esac
done
if ((DO_TEST + DO_UNIT + DO_BENCH == 0)); then DO_PACKAGES=1; fi

WAITS=$OUT/.lock-waits  # seconds waited for the lock, one line per wait
mkdir -p "$OUT"
: >"$WAITS"
locked() {  # locked CMD...: CMD under the build lock (when there is one)
  if [[ -n "$LOCK" && -e "$LOCK" ]]; then
    flock "$LOCK" bash -c 'echo $(($(date +%s) - $0)) >>"$1"; shift 2; exec "$@"' \
      "$(date +%s)" "$WAITS" -- "$@"
  else
    "$@"
  fi
}
waited() { awk '{ s += $1 } END { print s + 0 }' "$WAITS"; }
TIMES=()
step() {  # step LABEL CMD...: runs CMD, records its wall time (without lock waits)
  local start=$SECONDS w0 w rc=0
  w0=$(waited)
  "${@:2}" || rc=$?
  w=$(($(waited) - w0))
  TIMES+=("$(printf '  %-28s %5d s' "$1" $((SECONDS - start - w)))$( ((w)) && printf '  (+%d s waiting for the build lock)' "$w" || true)$( ((rc)) && printf '  FAILED (exit %d)' "$rc" || true)")
  return "$rc"
}

step "deps" bash packaging/install-deps.sh --arm64 "$SYSROOT"

configure() {
  locked cmake -S "$SRC" -B "$BUILD" -G Ninja \
    -DCMAKE_TOOLCHAIN_FILE="$SRC/cmake/toolchain-aarch64-linux-gnu.cmake" \
    -DSTOREGW_SYSROOT="$SYSROOT" \
    -DCMAKE_BUILD_TYPE=Release -DSTOREGW_PACKAGING=ON \
    -DSTOREGW_WERROR=ON -DCMAKE_UNITY_BUILD=ON -DCMAKE_UNITY_BUILD_BATCH_SIZE=8 >/dev/null
}
step "configure" configure

# ---------------------------------------------------------------- packages
VERSION=""
build_packages() {
  locked cmake --build "$BUILD" -j "$JOBS" --target \
    storegw storegw-hq storegw_packaging_files storegw_hq_packaging_files
}
make_packages() {
  rm -f "$OUT"/*.deb "$OUT"/*.ddeb "$OUT"/*.rpm
  local cfg gen
  (
    cd "$BUILD"
    rm -rf _CPack_Packages
    for cfg in CPackConfig.cmake CPackConfig-storegw-hq.cmake; do
      for gen in DEB RPM; do
        cpack --config "$cfg" -G "$gen" >"cpack-${cfg%.cmake}-$gen.log" 2>&1 || {
          echo "cpack --config $cfg -G $gen failed:"; tail -n 40 "cpack-${cfg%.cmake}-$gen.log"
          exit 1
        }
      done
    done
    mv -f ./*.deb ./*.ddeb ./*.rpm "$OUT"/
  )
}

fail() { echo "build-arm64: $*" >&2; exit 1; }
exe_path() { if [[ "$1" == storegw ]]; then echo gateway/storegw; else echo gateway/hq/storegw-hq; fi; }

# Architecture fields, aarch64 binaries, Depends/Requires from the arm64
# libraries, for storegw and storegw-hq.
check_packages() {
  local pkg deb rpm dbg tmp arch deps req exe
  VERSION=$(sed -n 's/^project(storegw VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
  tmp=$(mktemp -d)
  for pkg in storegw storegw-hq; do
    deb=$OUT/${pkg}_${VERSION}-1_arm64.deb
    dbg=$OUT/${pkg}-dbgsym_${VERSION}-1_arm64.ddeb
    rpm=$OUT/${pkg}-${VERSION}-1.aarch64.rpm
    for f in "$deb" "$dbg" "$rpm"; do [[ -f "$f" ]] || fail "missing $f"; done
    arch=$(dpkg-deb -f "$deb" Architecture)
    [[ "$arch" == arm64 ]] || fail "$deb: Architecture: $arch"
    [[ "$(dpkg-deb -f "$dbg" Architecture)" == arm64 ]] || fail "$dbg: not arm64"
    deps=$(dpkg-deb -f "$deb" Depends)
    # Every library the binary links (NEEDED) must be in Depends by the name
    # of its arm64 package (from the sysroot's dpkg database).
    local soname owner
    for soname in $(aarch64-linux-gnu-readelf -d "$BUILD/$(exe_path "$pkg")" |
                    sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
      owner=$(DPKG_ADMINDIR=$SYSROOT/var/lib/dpkg dpkg-query -S "*/$soname" 2>/dev/null |
              awk -v s="/lib/aarch64-linux-gnu/$soname" \
                'substr($0, length($0) - length(s) + 1) == s' | head -n1 | cut -d: -f1 || true)
      [[ -n "$owner" ]] || fail "$pkg: no package in the sysroot has $soname"
      # By its name or a name it provides (libspdlog1.10: libspdlog1.10-fmt9).
      local names n found=0
      names="${owner%:arm64} $(DPKG_ADMINDIR=$SYSROOT/var/lib/dpkg dpkg-query -W \
        -f='${Provides}' "$owner" | sed 's/([^)]*)//g; s/,/ /g')"
      for n in $names; do
        if [[ ", $deps," =~ ", $n"[,\ ] ]]; then found=1; fi
      done
      ((found)) || fail "$deb: Depends lacks $owner ($soname): $deps"
    done
    rm -rf "${tmp:?}"/*
    dpkg-deb -x "$deb" "$tmp"
    exe=$tmp/usr/bin/$pkg
    file -b "$exe" | grep -q 'ARM aarch64' || fail "$deb: $(file -b "$exe")"
    file -b "$exe" | grep -q ', stripped' || fail "$deb: binary not stripped: $(file -b "$exe")"
    [[ "$(rpm -qp --qf '%{ARCH}' "$rpm" 2>/dev/null)" == aarch64 ]] || fail "$rpm: not aarch64"
    req=$(rpm -qp --requires "$rpm" 2>/dev/null)
    grep -q '^ld-linux-aarch64.so.1' <<<"$req" || fail "$rpm: no ld-linux-aarch64 requirement"
    grep -q '^libprotobuf.so.32()(64bit)' <<<"$req" || fail "$rpm: no libprotobuf soname requirement"
    grep -q '^protobuf$' <<<"$req" || fail "$rpm: no named protobuf requirement"
    rm -rf "${tmp:?}"/*
    (cd "$tmp" && rpm2cpio "$rpm" | cpio -idm --quiet)
    file -b "$tmp/usr/bin/$pkg" | grep -q 'ARM aarch64' || fail "$rpm: binary is not aarch64"
    echo "  $pkg: deb Architecture: $arch; Depends: $deps"
    echo "  $pkg: rpm $(rpm -qp --qf '%{ARCH}' "$rpm" 2>/dev/null); Requires (by name; sonames besides): $(
      grep -Ev '^(rpmlib|/|config\()|\(' <<<"$req" | sort -u | tr '\n' ' ')"
  done
  rm -rf "$tmp"
  # lintian (with the packages' own overrides), as the amd64 package tests:
  # no error and no warning.
  local lint
  lint=$(lintian --pedantic --tag-display-limit 0 "$OUT"/storegw_"$VERSION"-1_arm64.deb \
    "$OUT"/storegw-hq_"$VERSION"-1_arm64.deb 2>&1 | grep -v 'root privileges' || true)
  if grep -Eq '^[EW]: ' <<<"$lint"; then fail "lintian: $lint"; fi
  echo "  lintian: no errors or warnings${lint:+ ($(grep -c '^[IP]: ' <<<"$lint") info/pedantic notes)}"
  echo "== packages in build/arm64/"
  (cd "$OUT" && ls -l --block-size=K -- *.deb *.ddeb *.rpm | awk '{printf "  %8s  %s\n", $5, $9}')
}

if ((DO_PACKAGES)); then
  echo "== cross build (aarch64-linux-gnu-g++ 12, Release, packaging flags)"
  step "build storegw, storegw-hq" build_packages
  echo "== packages (cpack DEB and RPM, storegw and storegw-hq)"
  step "cpack" make_packages
  step "check packages" check_packages
fi

# ---------------------------------------------------------------- tests
# qemu-user runs the arm64 programs. The tests start the real storegw (and
# helper processes) themselves, so the kernel must hand any arm64 program
# to qemu: binfmt_misc, registered from qemu-user-static's own entry
# (/usr/lib/binfmt.d/qemu-aarch64.conf, flag F: works in the tests' mount
# namespaces too). QEMU_LD_PREFIX points qemu at the sysroot for the arm64
# dynamic loader and libraries; nothing arm64 is installed on this machine.
ensure_binfmt() {
  local dir=/proc/sys/fs/binfmt_misc conf=/usr/lib/binfmt.d/qemu-aarch64.conf
  local sudo=""
  [[ "$(id -u)" -eq 0 ]] || sudo=sudo
  if [[ ! -e $dir/register ]]; then
    $sudo mount -t binfmt_misc binfmt_misc "$dir"
  fi
  if [[ ! -e $dir/qemu-aarch64 ]]; then
    [[ -f $conf ]] || fail "no $conf (qemu-user-static)"
    echo "build-arm64: registering qemu-aarch64 with binfmt_misc ($conf)"
    $sudo sh -c "cat '$conf' > '$dir/register'"
  fi
  grep -q '^enabled' $dir/qemu-aarch64 || fail "binfmt qemu-aarch64 is disabled"
}

# Not run on arm64 (the rest of the suite runs):
#   packaging.build/deb/rpm/install/upgrade  build and check the host's packages and
#       install them with dpkg -i here; the arm64 packages cannot be installed
#       on amd64. check_packages above checks the arm64 ones.
#   *_bench_smoke                   benchmark smoke runs (--bench runs
#       journal_bench on its own).
#   chaos_soak                      a timed soak; the emulator only stretches it.
ARM64_TEST_EXCLUDE='^packaging\.(build|deb|rpm|install|upgrade)$|_bench_smoke$|^chaos_soak$'

build_tests() { locked cmake --build "$BUILD" -j "$JOBS"; }
run_ctest() {
  local log=$OUT/ctest.log
  set +e
  QEMU_LD_PREFIX=$SYSROOT STOREGW_MODEL_OPS="${STOREGW_MODEL_OPS:-2500}" \
    locked ctest --test-dir "$BUILD" -j "$CTEST_JOBS" --timeout 1500 --output-on-failure \
      -E "$ARM64_TEST_EXCLUDE" ${ARM64_CTEST_ARGS:-} 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  set -e
  return "$rc"
}

if ((DO_TEST)); then
  echo "== tests: build (arm64)"
  step "build tests" build_tests
  ensure_binfmt
  echo "== tests under qemu-user ($(qemu-aarch64-static --version | head -n1))"
  step "ctest (qemu-user)" run_ctest || TEST_RC=$?
fi

if ((DO_UNIT && !DO_TEST)); then
  echo "== unit tests: build (arm64)"
  step "build unit tests" locked cmake --build "$BUILD" -j "$JOBS" --target unit_tests
  ensure_binfmt
  echo "== unit tests under qemu-user ($(qemu-aarch64-static --version | head -n1))"
  ARM64_CTEST_ARGS="-L unit ${ARM64_CTEST_ARGS:-}" step "ctest -L unit (qemu-user)" run_ctest ||
    TEST_RC=$?
fi

if ((DO_BENCH)); then
  echo "== journal_bench under qemu-user"
  locked cmake --build "$BUILD" -j "$JOBS" --target journal_bench
  ensure_binfmt
  bench() { QEMU_LD_PREFIX=$SYSROOT locked "$BUILD"/tests/bench/journal_bench ${JOURNAL_BENCH_ARGS:-}; }
  step "journal_bench (qemu-user)" bench
fi

echo "== time per step"
printf '%s\n' "${TIMES[@]}"
exit "$TEST_RC"
