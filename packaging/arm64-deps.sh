# The arm64 part of packaging/install-deps.sh (`install-deps.sh --arm64`),
# sourced by it after the plain install (it uses its as_root and
# missing_packages); not run on its own.
#
# install_arm64 SYSROOT:
#  1. On this machine (amd64): Debian's cross compiler
#     (crossbuild-essential-arm64: aarch64-linux-gnu-gcc/g++, binutils) and
#     qemu-user-static (runs the arm64 tests). Before installing anything it
#     simulates the install and refuses when apt would remove or upgrade a
#     package that is installed: the native build must stay as it is.
#  2. The arm64 architecture in dpkg (dpkg --add-architecture arm64), so that
#     apt can download :arm64 packages. No :arm64 package is installed.
#  3. SYSROOT: the :arm64 runtime and -dev packages of every dependency, and
#     everything they need to link (the closure apt computes for an empty
#     system), downloaded with `apt-get download` into SYSROOT/../debs and
#     unpacked with `dpkg -x`. Several Debian -dev packages are not
#     Multi-Arch: same, so installing their :arm64 version would remove the
#     amd64 one; the sysroot never touches the system's packages.
#     Absolute symlinks inside it are made relative (they would point into
#     this machine's own /usr otherwise).
#     SYSROOT/var/lib/dpkg is a dpkg database of just these packages (status,
#     file lists with the sysroot's paths, symbols and shlibs files): CPack's
#     dpkg-shlibdeps reads it (DPKG_ADMINDIR) to turn the arm64 binary's
#     libraries into the deb's Depends, as on an arm64 machine.
# Safe to run again: SYSROOT/.storegw-sysroot records the package list it
# was made from; when it matches ARM64_DEV_PKGS nothing is downloaded (no
# apt-get update, no network). A changed list rebuilds the sysroot.

# What the arm64 build links or includes: the :arm64 counterparts of the
# -dev packages in PKGS (header-only ones are Architecture: all), plus the C
# and C++ runtime's -dev packages.
ARM64_DEV_PKGS=(
  libc6-dev:arm64 libstdc++-12-dev:arm64
  libsqlite3-dev:arm64 zlib1g-dev:arm64 libzstd-dev:arm64
  libprotobuf-dev:arm64
  libpaho-mqtt-dev:arm64 libpaho-mqttpp-dev:arm64 libssl-dev:arm64
  libcurl4-openssl-dev:arm64
  libcpp-httplib-dev:arm64 libtomlplusplus-dev:arm64 libcli11-dev
  libspdlog-dev:arm64 libfmt-dev:arm64
  libsystemd-dev:arm64 libpq-dev:arm64
  doctest-dev rapidjson-dev
)
ARM64_HOST_PKGS=(crossbuild-essential-arm64 qemu-user-static)

# True when apt has arm64 package lists (after an apt-get update with the
# arm64 architecture added).
arm64_lists_present() {
  apt-cache show libc6:arm64 >/dev/null 2>&1
}

install_arm64_host_tools() {
  local missing
  missing_packages "${ARM64_HOST_PKGS[@]}"
  if [ ${#missing[@]} -eq 0 ]; then
    echo "install-deps: arm64: cross compiler and qemu-user-static present"
    return 0
  fi
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq
  local sim
  sim=$(apt-get -s install --no-install-recommends "${missing[@]}")
  # "Remv pkg" removes; "Inst pkg [old-version] (new ...)" upgrades one that
  # is installed. Either changes the native system: refuse.
  if grep -Eq '^Remv |^Inst [^ ]+ \[' <<<"$sim"; then
    echo "install-deps: arm64: installing ${missing[*]} would change installed packages:" >&2
    grep -E '^Remv |^Inst [^ ]+ \[' <<<"$sim" >&2
    echo "install-deps: arm64: refusing; install them by hand once that is acceptable" >&2
    return 1
  fi
  echo "install-deps: arm64: installing ${missing[*]}"
  as_root apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

ensure_arm64_architecture() {
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    echo "install-deps: arm64: dpkg --add-architecture arm64"
    as_root dpkg --add-architecture arm64
  fi
  if ! arm64_lists_present; then
    as_root apt-get update -qq
  fi
}

# The packages (name:arch=version, or name=version for Architecture: all)
# that an empty system would install for ARM64_DEV_PKGS, without the host's
# own (amd64) tools that some -dev packages depend on.
arm64_closure() {
  local empty
  empty=$(mktemp -d)
  : >"$empty/status"
  apt-get -s -o Dir::State::status="$empty/status" install --no-install-recommends \
      "${ARM64_DEV_PKGS[@]}" |
    awk '/^Inst / {
      name = $2; ver = $3; gsub(/[()]/, "", ver)
      arch = $NF; gsub(/[\[\])]/, "", arch)
      if (arch == "") { if (name ~ /:arm64$/) arch = "arm64"; else next }
      if (arch == "amd64") next
      sub(/:arm64$/, "", name)
      print (arch == "all" ? name : name ":arm64") "=" ver
    }'
  rm -rf "$empty"
}

# arm64_fake_dpkg_db SYSROOT DEBDIR PKG...: SYSROOT/var/lib/dpkg for
# dpkg-shlibdeps (see the top of this file).
arm64_fake_dpkg_db() {
  local root="$1" debs="$2" db="$1/var/lib/dpkg" spec name deb ma qname ctl f
  shift 2
  rm -rf "$db"
  mkdir -p "$db/info" "$db/updates" "$db/triggers"
  echo 1 >"$db/info/format"  # file lists named pkg:arch.list
  : >"$db/status"
  ctl=$(mktemp -d)
  for spec in "$@"; do
    name="${spec%%=*}"
    name="${name%:arm64}"
    deb=$(ls "$debs/${name}_"*.deb | head -n1)
    ma=$(dpkg-deb -f "$deb" Multi-Arch)
    qname="$name"
    if [ "$ma" = same ]; then qname="$name:$(dpkg-deb -f "$deb" Architecture)"; fi
    {
      echo "Package: $(dpkg-deb -f "$deb" Package)"
      echo "Status: install ok installed"
      dpkg-deb -f "$deb" | grep -v '^Package:'
      echo
    } >>"$db/status"
    dpkg-deb --fsys-tarfile "$deb" | tar -t | sed -e 's|^\./|/|' -e 's|/$||' |
      awk -v root="$root" '$0 == "/" { print "/."; next } { print root $0 }' >"$db/info/$qname.list"
    rm -rf "${ctl:?}"/*
    dpkg-deb -e "$deb" "$ctl"
    for f in symbols shlibs; do
      if [ -f "$ctl/$f" ]; then cp "$ctl/$f" "$db/info/$qname.$f"; fi
    done
  done
  rm -rf "$ctl"
}

install_arm64() {
  local sysroot="$1"
  local debs stamp want p
  sysroot=$(realpath -m "$sysroot")
  debs="$(dirname "$sysroot")/debs"
  stamp="$sysroot/.storegw-sysroot"
  install_arm64_host_tools
  want="packages: ${ARM64_DEV_PKGS[*]}"
  if [ -f "$stamp" ] && [ "$(head -n1 "$stamp")" = "$want" ] &&
     dpkg --print-foreign-architectures | grep -qx arm64; then
    echo "install-deps: arm64: sysroot $sysroot up to date"
    return 0
  fi
  ensure_arm64_architecture

  echo "install-deps: arm64: resolving the arm64 packages of the sysroot"
  local closure=()
  mapfile -t closure < <(arm64_closure)
  if [ ${#closure[@]} -lt ${#ARM64_DEV_PKGS[@]} ]; then
    echo "install-deps: arm64: apt resolved only ${#closure[@]} packages:" >&2
    apt-get -s -o Dir::State::status=/dev/null install --no-install-recommends \
      "${ARM64_DEV_PKGS[@]}" >&2 || true
    return 1
  fi
  echo "install-deps: arm64: ${#closure[@]} packages into $sysroot"
  mkdir -p "$debs"
  # Only what is not in the cache yet (a file per name_version_arch).
  local need=() name ver arch file
  for p in "${closure[@]}"; do
    name="${p%%=*}"; ver="${p#*=}"; arch=arm64
    if [[ "$name" != *:arm64 ]]; then arch=all; fi
    file="${name%:arm64}_${ver//:/%3a}_${arch}.deb"
    [ -f "$debs/$file" ] || need+=("$p")
  done
  if [ ${#need[@]} -gt 0 ]; then
    # apt's _apt user must be able to write where it downloads.
    (cd "$debs" && chmod 0777 . && apt-get download -q "${need[@]}")
  fi
  # Drop cached versions no longer in the closure (one version per name).
  local keep=" " base
  for p in "${closure[@]}"; do
    name="${p%%=*}"; name="${name%:arm64}"; ver="${p#*=}"
    keep+="${name}_${ver//:/%3a}_ "
  done
  for file in "$debs"/*.deb; do
    base=$(basename "$file")
    [[ "$keep" == *" ${base%_*}_ "* ]] || rm -f "$file"
  done

  local tmp="$sysroot.tmp"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  for file in "$debs"/*.deb; do dpkg -x "$file" "$tmp"; done
  # Absolute symlinks (libfoo.so -> /usr/lib/...): relative, into the sysroot.
  local link target
  while IFS= read -r -d '' link; do
    target=$(readlink "$link")
    if [[ "$target" == /* ]]; then ln -sfn --relative "$tmp$target" "$link"; fi
  done < <(find "$tmp" -type l -print0)
  arm64_fake_dpkg_db "$tmp" "$debs" "${closure[@]}"
  # The fake database names the final paths.
  sed -i "s|^$tmp/|$sysroot/|; s|^$tmp\$|$sysroot|" "$tmp"/var/lib/dpkg/info/*.list
  rm -rf "$sysroot"
  mv "$tmp" "$sysroot"
  { echo "$want"; printf '%s\n' "${closure[@]}"; } >"$stamp"
  echo "install-deps: arm64: sysroot ready ($(du -sh "$sysroot" | cut -f1))"
}
