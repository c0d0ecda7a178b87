#!/usr/bin/env bash
# Rebuilds the packages of storegw's first release, 0.1.0, that the upgrade
# test (packaging_test.sh upgrade) installs before upgrading to the packages
# of the tree under test:
#
#   tests/packaging/fixtures/storegw_0.1.0-1_amd64.deb
#   tests/packaging/fixtures/storegw-0.1.0-1.x86_64.rpm
#
# They are built from commit ecfb578 of this repository (the last commit of
# 0.1.0, journal schema 2) with that commit's own "release" preset and cpack,
# on Debian 12 with the libraries packaging/install-deps.sh installs; the
# debug packages are not kept. The files are committed (a test must not spend
# minutes building an old release); run this script again only to remake them
# (it needs the repository's history and about 3 minutes on 2 cores):
#
#   bash tests/packaging/make_release_fixture.sh
set -euo pipefail
COMMIT=ecfb57875a35590473fe889d4217720645d51167
VERSION=0.1.0
here=$(cd "$(dirname "$0")" && pwd)
root=$(git -C "$here" rev-parse --show-toplevel)
out=$here/fixtures
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

git -C "$root" cat-file -e "$COMMIT^{commit}" ||
  { echo "make_release_fixture: commit $COMMIT is not in this clone (a shallow clone?)" >&2; exit 1; }
mkdir -p "$work/src"
git -C "$root" archive "$COMMIT" | tar -x -C "$work/src"
grep -q "project(storegw VERSION $VERSION " "$work/src/CMakeLists.txt" ||
  { echo "make_release_fixture: $COMMIT is not version $VERSION" >&2; exit 1; }
cmake -S "$work/src" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSTOREGW_PACKAGING=ON \
  -DSTOREGW_BUILD_TESTS=OFF >/dev/null
cmake --build "$work/build" -j "$(nproc)"
(cd "$work/build" && cpack -G DEB >/dev/null && cpack -G RPM >/dev/null)
mkdir -p "$out"
deb=$(find "$work/build" -name "storegw_${VERSION}-1_*.deb" | head -n1)
rpm=$(find "$work/build" -name "storegw-${VERSION}-1.*.rpm" ! -name '*debuginfo*' | head -n1)
[ -n "$deb" ] && [ -n "$rpm" ] || { echo "make_release_fixture: cpack made no deb or rpm" >&2; exit 1; }
cp "$deb" "$rpm" "$out/"
ls -l "$out"
