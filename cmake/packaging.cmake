# cmake/packaging.cmake: install rules and CPack set-up for the storegw deb and
# rpm, and the release build flags of the packaged binary.
#
# Included from the top-level CMakeLists.txt after the modules (it installs
# the `storegw` target that gateway/ defines):
#     include(cmake/packaging.cmake)
#
# Build the packages (the "release" preset sets STOREGW_PACKAGING=ON):
#     cmake --preset release && cmake --build --preset release
#     cd build/release && cpack -G DEB && cpack -G RPM
# giving storegw_<ver>-1_<arch>.deb + storegw-dbgsym_<ver>-1_<arch>.ddeb and
# storegw-<ver>-1.<arch>.rpm + storegw-debuginfo-<ver>-1.<arch>.rpm.
#
# The second package, storegw-hq (head office's receiver, gateway/hq/, files
# in packaging/hq/), comes from the same build with its own config file:
#     cd build/release && cpack --config CPackConfig-storegw-hq.cmake -G DEB
# (and -G RPM): storegw-hq_<ver>-1_<arch>.deb, storegw-hq-<ver>-1.<arch>.rpm.
# It is the same CPack set-up with STOREGW_CPACK_PACKAGE=storegw-hq, which
# packaging/CPackProjectConfig.cmake.in turns into storegw-hq's name,
# components, scripts and requirements.
#
# The install rules describe the packaged layout (prefix /usr, config in
# /etc/storegw); they are not meant for `cmake --install` into /usr/local.
# Everything packaged is in install component "storegw" (plus "storegw-deb",
# the Debian-only docs), or "storegw-hq" (plus "storegw-hq-deb"), so
# install() rules added elsewhere for other purposes never leak into a
# package.

option(STOREGW_PACKAGING
  "Build the packaged release: -O2 -g, _FORTIFY_SOURCE=2, -fstack-protector-strong, PIE, full RELRO"
  OFF)
set(STOREGW_PACKAGE_CONTACT "storegw maintainers <storegw-maintainers@example.com>"
  CACHE STRING "Maintainer / Packager field of the deb and rpm")
set(STOREGW_PACKAGE_LICENSE "LicenseRef-storegw-unspecified"
  CACHE STRING "License field of the rpm (see packaging/copyright)")

if(NOT TARGET storegw)
  message(STATUS "storegw packaging: no storegw target (STOREGW_MODULES without gateway): no packages")
  return()
endif()

set(_pkg_src ${CMAKE_SOURCE_DIR}/packaging)
set(_pkg_out ${CMAKE_BINARY_DIR}/packaging)
set(STOREGW_PKG_PREFIX /usr)            # CPACK_PACKAGING_INSTALL_PREFIX
set(STOREGW_PKG_CONFIG /etc/storegw/storegw.toml)
set(STOREGW_PKG_DATA_DIR /var/lib/storegw)

# ---------------------------------------------------------------------------
# Release flags of the packaged binary (STOREGW_PACKAGING=ON).
#
# -O2 (Debian's and Fedora's level; CMake's Release default is -O3) and -g so
# that CPack can split a debug file off the stripped binary. FORTIFY needs
# optimisation, which every packaging build has. -z relro -z now come from
# cmake/flags.cmake for every build; PIE from CMAKE_POSITION_INDEPENDENT_CODE
# (-fPIE) plus -pie below.
#
# This file is included after the modules, so the flags are added to every
# target of the project at the end of the top-level directory (a deferred
# call): target options come after CMAKE_CXX_FLAGS_RELEASE on the command
# line, so -O2 wins over Release's -O3.
if(STOREGW_PACKAGING)
  if(STOREGW_SANITIZE OR STOREGW_TSAN)
    message(FATAL_ERROR "STOREGW_PACKAGING=ON cannot be combined with a sanitizer build")
  endif()
  if(NOT CMAKE_BUILD_TYPE STREQUAL "Release")
    message(WARNING "STOREGW_PACKAGING=ON expects CMAKE_BUILD_TYPE=Release (got '${CMAKE_BUILD_TYPE}')")
  endif()
  include(CheckCXXCompilerFlag)
  set(STOREGW_RELEASE_COMPILE_FLAGS
    -O2 -g -U_FORTIFY_SOURCE -D_FORTIFY_SOURCE=2 -fstack-protector-strong)
  # What Debian's dpkg-buildflags adds on top on amd64/arm64, where supported.
  foreach(flag -fstack-clash-protection -fcf-protection)
    string(MAKE_C_IDENTIFIER "STOREGW_HAS${flag}" var)
    check_cxx_compiler_flag(${flag} ${var})
    if(${var})
      list(APPEND STOREGW_RELEASE_COMPILE_FLAGS ${flag})
    endif()
  endforeach()
  set(STOREGW_RELEASE_LINK_FLAGS -pie -Wl,-z,relro -Wl,-z,now)

  # Source paths in the debug info, for the rpm's debuginfo package: rpm's
  # debugedit rewrites them to /usr/src/debug/storegw-VERSION/src_N and
  # CPack copies the sources there, but only into a path no longer than the
  # one it replaces (CPackRPM refuses a shorter source dir, and /work/main
  # is short). So the compiler records the sources under long "farm"
  # directories in the build tree instead: real directories holding one
  # symlink per top-level entry of the source (binary) dir, minus the build
  # tree itself, so that no symlink loops back into it.
  set(STOREGW_RPM_SOURCES_PREFIX /usr/src/debug/storegw-${PROJECT_VERSION})
  set(STOREGW_HQ_RPM_SOURCES_PREFIX /usr/src/debug/storegw-hq-${PROJECT_VERSION})
  # Long enough for both packages' prefixes (storegw-hq's is the longer).
  string(LENGTH "${STOREGW_HQ_RPM_SOURCES_PREFIX}/src_0" _need)
  set(_farm ${CMAKE_BINARY_DIR}/packaging/debug-sources)
  string(LENGTH "${_farm}/source" _have)
  while(_have LESS _need)
    string(APPEND _farm "-")
    string(LENGTH "${_farm}/source" _have)
  endwhile()
  function(_storegw_link_farm from to skip)
    file(REMOVE_RECURSE ${to})
    file(MAKE_DIRECTORY ${to})
    file(GLOB entries RELATIVE ${from} ${from}/*)
    foreach(e IN LISTS entries)
      set(_full "${from}/${e}")
      cmake_path(IS_PREFIX _full "${skip}" NORMALIZE _contains_skip)
      if(NOT _contains_skip)
        file(CREATE_LINK ${_full} ${to}/${e} SYMBOLIC)
      endif()
    endforeach()
  endfunction()
  _storegw_link_farm(${CMAKE_SOURCE_DIR} ${_farm}/source ${CMAKE_BINARY_DIR})
  _storegw_link_farm(${CMAKE_BINARY_DIR} ${_farm}/build ${CMAKE_BINARY_DIR}/packaging)
  # GCC tries the last matching map first: the binary dir (which may sit
  # inside the source dir) must come last.
  list(APPEND STOREGW_RELEASE_COMPILE_FLAGS
    -ffile-prefix-map=${CMAKE_SOURCE_DIR}=${_farm}/source
    -ffile-prefix-map=${CMAKE_BINARY_DIR}=${_farm}/build)
  set(STOREGW_RPM_SOURCE_DIRS ${_farm}/source ${_farm}/build)

  function(_storegw_targets_in dir out)
    get_property(targets DIRECTORY ${dir} PROPERTY BUILDSYSTEM_TARGETS)
    get_property(subdirs DIRECTORY ${dir} PROPERTY SUBDIRECTORIES)
    foreach(sub IN LISTS subdirs)
      _storegw_targets_in(${sub} sub_targets)
      list(APPEND targets ${sub_targets})
    endforeach()
    set(${out} ${targets} PARENT_SCOPE)
  endfunction()

  function(_storegw_apply_release_flags)
    _storegw_targets_in(${CMAKE_SOURCE_DIR} targets)
    set(n 0)
    foreach(t IN LISTS targets)
      get_target_property(type ${t} TYPE)
      if(type MATCHES "^(EXECUTABLE|STATIC_LIBRARY|SHARED_LIBRARY|MODULE_LIBRARY|OBJECT_LIBRARY)$")
        target_compile_options(${t} PRIVATE
          "$<$<COMPILE_LANGUAGE:C,CXX>:${STOREGW_RELEASE_COMPILE_FLAGS}>")
        if(type STREQUAL "EXECUTABLE")
          target_link_options(${t} PRIVATE ${STOREGW_RELEASE_LINK_FLAGS})
        endif()
        math(EXPR n "${n} + 1")
      endif()
    endforeach()
    message(STATUS "storegw packaging: release flags on ${n} targets: "
                   "${STOREGW_RELEASE_COMPILE_FLAGS} / ${STOREGW_RELEASE_LINK_FLAGS}")
  endfunction()
  cmake_language(DEFER DIRECTORY ${CMAKE_SOURCE_DIR} CALL _storegw_apply_release_flags)
endif()

# ---------------------------------------------------------------------------
# Generated files.
file(MAKE_DIRECTORY ${_pkg_out})

# The packaged config: packaging/storegw.toml (every key commented out at its
# default) with gateway.data_dir set to the package's state directory, so
# the service, `storegw journal verify --config ...` and the maintainer
# scripts agree on where the journal is.
file(READ ${_pkg_src}/storegw.toml _toml)
string(REGEX MATCH "\n#data_dir = [^\n]*\n" _dd_line "${_toml}")
if(NOT _dd_line)
  message(FATAL_ERROR "packaging/storegw.toml has no '#data_dir = ...' line to set to "
                      "${STOREGW_PKG_DATA_DIR} in the packaged config")
endif()
string(REPLACE "${_dd_line}" "\ndata_dir = \"${STOREGW_PKG_DATA_DIR}\"\n" _toml "${_toml}")
file(CONFIGURE OUTPUT ${_pkg_out}/storegw.toml CONTENT "${_toml}" @ONLY)
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${_pkg_src}/storegw.toml)

# The systemd unit.
set(STOREGW_UNIT_EXEC ${STOREGW_PKG_PREFIX}/bin/storegw)
configure_file(${_pkg_src}/storegw.service.in ${_pkg_out}/storegw.service @ONLY)

# Compressed docs (-n: no name or timestamp in the gzip header, so the
# packages are reproducible; lintian insists on compressed man pages and
# changelogs).
find_program(STOREGW_GZIP gzip REQUIRED)
set(_pkg_gz)
foreach(pair "docs/storegw.1|storegw.1.gz" "packaging/changelog|changelog.Debian.gz")
  string(REPLACE "|" ";" pair "${pair}")
  list(GET pair 0 in)
  list(GET pair 1 out)
  add_custom_command(OUTPUT ${_pkg_out}/${out}
    COMMAND ${STOREGW_GZIP} -9nc ${CMAKE_SOURCE_DIR}/${in} > ${_pkg_out}/${out}
    DEPENDS ${CMAKE_SOURCE_DIR}/${in}
    COMMENT "gzip ${in}"
    VERBATIM)
  list(APPEND _pkg_gz ${_pkg_out}/${out})
endforeach()
add_custom_target(storegw_packaging_files ALL DEPENDS ${_pkg_gz})

# The Debian changelog's newest entry must name the package version.
file(STRINGS ${_pkg_src}/changelog _cl_first LIMIT_COUNT 1)
set(STOREGW_PKG_RELEASE 1)
if(NOT _cl_first MATCHES "^storegw \\(${PROJECT_VERSION}-${STOREGW_PKG_RELEASE}\\) ")
  message(WARNING "packaging/changelog starts with '${_cl_first}', not with version "
                  "${PROJECT_VERSION}-${STOREGW_PKG_RELEASE}: add an entry for this version "
                  "(and to packaging/rpm/changelog)")
endif()
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
  ${_pkg_src}/changelog ${_pkg_src}/storegw.service.in)

# ---------------------------------------------------------------------------
# Install rules (the package contents).
install(TARGETS storegw RUNTIME DESTINATION bin COMPONENT storegw)
install(FILES ${_pkg_out}/storegw.toml DESTINATION /etc/storegw COMPONENT storegw
  PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
install(FILES ${_pkg_out}/storegw.service DESTINATION lib/systemd/system COMPONENT storegw)
install(FILES ${_pkg_src}/storegw.sysusers DESTINATION lib/sysusers.d
  RENAME storegw.conf COMPONENT storegw)
install(FILES ${_pkg_out}/storegw.1.gz DESTINATION share/man/man1 COMPONENT storegw)
# Ops files for the store's monitoring (docs/ops.md): Prometheus alerting
# rules and a Grafana dashboard, loaded from there or copied and adapted.
install(FILES ${_pkg_src}/ops/storegw-alerts.yml DESTINATION share/storegw/prometheus
  COMPONENT storegw)
install(FILES ${_pkg_src}/ops/storegw-dashboard.json DESTINATION share/storegw/grafana
  COMPONENT storegw)
install(FILES ${_pkg_src}/copyright DESTINATION share/doc/storegw COMPONENT storegw)
install(FILES ${_pkg_out}/changelog.Debian.gz DESTINATION share/doc/storegw
  COMPONENT storegw-deb)
install(FILES ${_pkg_src}/lintian-overrides DESTINATION share/lintian/overrides
  RENAME storegw COMPONENT storegw-deb)

# ---------------------------------------------------------------------------
# storegw-hq (packaging/hq/): its unit, config, man page and changelog, in
# install components "storegw-hq" and "storegw-hq-deb".
if(TARGET storegw-hq)
  set(_hq_src ${_pkg_src}/hq)
  set(_hq_out ${_pkg_out}/hq)
  file(MAKE_DIRECTORY ${_hq_out})
  set(STOREGW_HQ_PKG_CONFIG /etc/storegw-hq/storegw-hq.toml)
  set(STOREGW_HQ_UNIT_EXEC ${STOREGW_PKG_PREFIX}/bin/storegw-hq)
  configure_file(${_hq_src}/storegw-hq.service.in ${_hq_out}/storegw-hq.service @ONLY)
  set(_hq_gz)
  foreach(pair "docs/storegw-hq.1|storegw-hq.1.gz" "packaging/hq/changelog|changelog.Debian.gz")
    string(REPLACE "|" ";" pair "${pair}")
    list(GET pair 0 in)
    list(GET pair 1 out)
    add_custom_command(OUTPUT ${_hq_out}/${out}
      COMMAND ${STOREGW_GZIP} -9nc ${CMAKE_SOURCE_DIR}/${in} > ${_hq_out}/${out}
      DEPENDS ${CMAKE_SOURCE_DIR}/${in}
      COMMENT "gzip ${in}"
      VERBATIM)
    list(APPEND _hq_gz ${_hq_out}/${out})
  endforeach()
  add_custom_target(storegw_hq_packaging_files ALL DEPENDS ${_hq_gz})
  file(STRINGS ${_hq_src}/changelog _hq_cl_first LIMIT_COUNT 1)
  if(NOT _hq_cl_first MATCHES "^storegw-hq \\(${PROJECT_VERSION}-${STOREGW_PKG_RELEASE}\\) ")
    message(WARNING "packaging/hq/changelog starts with '${_hq_cl_first}', not with version "
                    "${PROJECT_VERSION}-${STOREGW_PKG_RELEASE}: add an entry for this version "
                    "(and to packaging/hq/rpm/changelog)")
  endif()
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
    ${_hq_src}/changelog ${_hq_src}/storegw-hq.service.in)

  install(TARGETS storegw-hq RUNTIME DESTINATION bin COMPONENT storegw-hq)
  install(FILES ${_hq_src}/storegw-hq.toml DESTINATION /etc/storegw-hq COMPONENT storegw-hq
    PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
  install(FILES ${_hq_out}/storegw-hq.service DESTINATION lib/systemd/system
    COMPONENT storegw-hq)
  install(FILES ${_hq_src}/storegw-hq.sysusers DESTINATION lib/sysusers.d
    RENAME storegw-hq.conf COMPONENT storegw-hq)
  install(FILES ${_hq_out}/storegw-hq.1.gz DESTINATION share/man/man1 COMPONENT storegw-hq)
  install(FILES ${_pkg_src}/copyright DESTINATION share/doc/storegw-hq COMPONENT storegw-hq)
  install(FILES ${_hq_out}/changelog.Debian.gz DESTINATION share/doc/storegw-hq
    COMPONENT storegw-hq-deb)
  install(FILES ${_hq_src}/lintian-overrides DESTINATION share/lintian/overrides
    RENAME storegw-hq COMPONENT storegw-hq-deb)
endif()

# ---------------------------------------------------------------------------
# CPack.
set(CPACK_PACKAGE_NAME storegw)
set(CPACK_PACKAGE_VENDOR "storegw")
set(CPACK_PACKAGE_CONTACT "${STOREGW_PACKAGE_CONTACT}")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "store-and-forward gateway for retail stores")
set(CPACK_PACKAGE_DESCRIPTION
"storegw runs on the edge box of a retail store. Tills, scales, handhelds and
sensors send it their sale and stock events over HTTP; it writes each event
to a durable SQLite journal before it answers, keeps the store's stock on
hand current while the store is offline, and replays the journal to head
office over MQTT or HTTPS when the link is up, in order and exactly once.
.
The package runs it as the hardened systemd service storegw.service under
the system user storegw, with its configuration in /etc/storegw/storegw.toml
and its journal in /var/lib/storegw.")
set(CPACK_PACKAGING_INSTALL_PREFIX ${STOREGW_PKG_PREFIX})
set(CPACK_GENERATOR "DEB;RPM")
set(CPACK_PROJECT_CONFIG_FILE ${_pkg_out}/CPackProjectConfig.cmake)
# Which components each generator packages (monolithic: one package each).
set(STOREGW_CPACK_PROJECT_DEB "${CMAKE_BINARY_DIR};storegw;storegw;/;${CMAKE_BINARY_DIR};storegw;storegw-deb;/")
set(STOREGW_CPACK_PROJECT_RPM "${CMAKE_BINARY_DIR};storegw;storegw;/")
set(CPACK_INSTALL_CMAKE_PROJECTS "${STOREGW_CPACK_PROJECT_RPM}")
# storegw-hq's, chosen by STOREGW_CPACK_PACKAGE (CPackConfig-storegw-hq.cmake).
set(STOREGW_HQ_CPACK_PROJECT_DEB "${CMAKE_BINARY_DIR};storegw;storegw-hq;/;${CMAKE_BINARY_DIR};storegw;storegw-hq-deb;/")
set(STOREGW_HQ_CPACK_PROJECT_RPM "${CMAKE_BINARY_DIR};storegw;storegw-hq;/")
set(STOREGW_HQ_PACKAGE_DESCRIPTION
"storegw-hq is head office's end of storegw's wire protocol. It receives the
event batches of storegw store gateways over MQTT 5 (shared subscriptions,
so several replicas share the load) and HTTPS, stores every event exactly
once in PostgreSQL 15 and acknowledges a batch to its gateway only after the
commit. It shows the fleet (online, backlog, lag, applied seq) as a web
page, JSON and Prometheus metrics, and publishes stock snapshots and prices
down to the stores.
.
The package runs it as the hardened systemd service storegw-hq.service
under the system user storegw-hq, with its configuration in
/etc/storegw-hq/storegw-hq.toml; the PostgreSQL database is set up by the
administrator.")

# Debug packages. The deb's (CPack strips the binary and puts the debug
# file, named by build id, into storegw-dbgsym_*.ddeb) needs only -g:
# RelWithDebInfo, Debug, or the packaging build (which adds -g). The rpm's
# (rpmbuild's find-debuginfo: storegw-debuginfo-*.rpm, with the sources)
# also needs the source path mapping above: packaging build only; without
# it rpmbuild strips the binary and there is no debuginfo rpm.
if(STOREGW_PACKAGING OR CMAKE_BUILD_TYPE MATCHES "^(RelWithDebInfo|Debug)$")
  set(STOREGW_DEB_DEBUG_PACKAGE ON)
else()
  set(STOREGW_DEB_DEBUG_PACKAGE OFF)
  message(STATUS "storegw packaging: no -g in a ${CMAKE_BUILD_TYPE} build without "
                 "STOREGW_PACKAGING: no debug package; CPack strips the binary")
endif()
# With a debug package the debuginfo generators strip the binary and keep the
# debug file; without one (no -g) CPack strips it, so a package never ships
# symbols it has no debug package for (lintian: unstripped-binary-or-object).
if(STOREGW_DEB_DEBUG_PACKAGE)
  set(CPACK_STRIP_FILES OFF)
else()
  set(CPACK_STRIP_FILES ON)
endif()
set(STOREGW_RPM_DEBUG_PACKAGE ${STOREGW_PACKAGING})

# deb
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE ${STOREGW_PKG_RELEASE})
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_DEBUGINFO_PACKAGE ${STOREGW_DEB_DEBUG_PACKAGE})
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
  ${_pkg_src}/deb/conffiles
  ${_pkg_src}/deb/postinst
  ${_pkg_src}/deb/prerm
  ${_pkg_src}/deb/postrm)

# rpm
set(CPACK_RPM_FILE_NAME RPM-DEFAULT)
set(CPACK_RPM_PACKAGE_RELEASE ${STOREGW_PKG_RELEASE})
set(CPACK_RPM_PACKAGE_LICENSE "${STOREGW_PACKAGE_LICENSE}")
set(CPACK_RPM_PACKAGE_DESCRIPTION "${CPACK_PACKAGE_DESCRIPTION}")
# Requires: generated at cpack time from the binary's NEEDED libraries
# (packaging/CPackProjectConfig.cmake.in) with this map of library base name
# to Fedora package ("=" alone: no named requirement, glibc and the compiler
# runtime are left to rpm's automatic soname requirements).
set(STOREGW_RPM_NAME_MAP
  libpaho-mqtt3as=paho-c libpaho-mqtt3a=paho-c libpaho-mqtt3cs=paho-c libpaho-mqtt3c=paho-c
  libpaho-mqttpp3=paho-cpp libsqlite3=sqlite-libs libcurl=libcurl libprotobuf=protobuf
  libspdlog=spdlog libfmt=fmt libtomlplusplus=tomlplusplus libcpp-httplib=cpp-httplib
  libsystemd=systemd-libs libssl=openssl-libs libcrypto=openssl-libs libz=zlib libzstd=libzstd libpq=libpq
  libc= libm= libgcc_s= libstdc++= ld-linux-x86-64= ld-linux-aarch64=)
set(CPACK_RPM_PACKAGE_REQUIRES_PRE "shadow-utils")
set(CPACK_RPM_PRE_INSTALL_SCRIPT_FILE ${_pkg_src}/rpm/pre.sh)
set(CPACK_RPM_POST_INSTALL_SCRIPT_FILE ${_pkg_src}/rpm/post.sh)
set(CPACK_RPM_PRE_UNINSTALL_SCRIPT_FILE ${_pkg_src}/rpm/preun.sh)
set(CPACK_RPM_POST_UNINSTALL_SCRIPT_FILE ${_pkg_src}/rpm/postun.sh)
set(CPACK_RPM_CHANGELOG_FILE ${_pkg_src}/rpm/changelog)
set(CPACK_RPM_USER_FILELIST
  "%config(noreplace) %attr(0640,root,storegw) /etc/storegw/storegw.toml"
  "%license /usr/share/doc/storegw/copyright")
# Directories other packages own (filesystem, systemd, man-db): not ours.
set(CPACK_RPM_EXCLUDE_FROM_AUTO_FILELIST_ADDITION
  /usr/lib/systemd /usr/lib/systemd/system /usr/lib/sysusers.d
  /usr/share/man /usr/share/man/man1)
set(CPACK_PACKAGE_RELOCATABLE OFF)
set(CPACK_RPM_PACKAGE_RELOCATABLE OFF)
set(CPACK_RPM_DEBUGINFO_PACKAGE ${STOREGW_RPM_DEBUG_PACKAGE})
if(STOREGW_RPM_DEBUG_PACKAGE)
  set(CPACK_BUILD_SOURCE_DIRS "${STOREGW_RPM_SOURCE_DIRS}")
  set(CPACK_RPM_BUILD_SOURCE_DIRS_PREFIX ${STOREGW_RPM_SOURCES_PREFIX})
endif()

# Cross builds (cmake/toolchain-aarch64-linux-gnu.cmake): the packages are
# for the target, not for this machine. CPack would ask dpkg and uname for
# the architecture; the target's name is set instead. The host's binutils
# cannot read an aarch64 binary: the debug files are split with the cross
# binutils (deb: CPack's readelf/objcopy; rpm: rpmbuild's strip and objdump;
# its find-debuginfo uses elfutils, which reads any ELF). dpkg-shlibdeps
# finds the libraries in the sysroot and their packages in the sysroot's
# dpkg database (packaging/arm64-deps.sh makes it), as it would on the target.
set(STOREGW_CPACK_DPKG_ADMINDIR "")
set(STOREGW_CPACK_DEB_HOST_ARCH "")
if(CMAKE_CROSSCOMPILING)
  if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(aarch64|arm64)$")
    set(CPACK_DEBIAN_PACKAGE_ARCHITECTURE arm64)
    set(CPACK_RPM_PACKAGE_ARCHITECTURE aarch64)
  else()
    message(FATAL_ERROR "storegw packaging: no deb/rpm architecture known for "
                        "CMAKE_SYSTEM_PROCESSOR=${CMAKE_SYSTEM_PROCESSOR}")
  endif()
  set(STOREGW_CPACK_DEB_HOST_ARCH ${CPACK_DEBIAN_PACKAGE_ARCHITECTURE})
  foreach(tool READELF OBJCOPY)
    if(NOT CMAKE_${tool})
      message(FATAL_ERROR "storegw packaging: cross build without CMAKE_${tool}")
    endif()
    set(CPACK_${tool}_EXECUTABLE ${CMAKE_${tool}})
  endforeach()
  set(CPACK_RPM_SPEC_MORE_DEFINE "%define __strip ${CMAKE_STRIP}\n%define __objdump ${CMAKE_OBJDUMP}")
  if(CMAKE_SYSROOT)
    set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS_PRIVATE_DIRS
      ${CMAKE_SYSROOT}/lib/${CMAKE_LIBRARY_ARCHITECTURE}
      ${CMAKE_SYSROOT}/usr/lib/${CMAKE_LIBRARY_ARCHITECTURE})
    if(EXISTS ${CMAKE_SYSROOT}/var/lib/dpkg/status)
      set(STOREGW_CPACK_DPKG_ADMINDIR ${CMAKE_SYSROOT}/var/lib/dpkg)
    else()
      message(WARNING "storegw packaging: no dpkg database in the sysroot "
                      "(${CMAKE_SYSROOT}/var/lib/dpkg): the deb's Depends will miss the libraries")
    endif()
  endif()
endif()

# storegw-hq's settings, for packaging/CPackProjectConfig.cmake.in.
if(TARGET storegw-hq)
  set(STOREGW_HQ_EXE_GENEX "$<TARGET_FILE:storegw-hq>")
  set(STOREGW_HQ_DEB_CONTROL_EXTRA
    ${_pkg_src}/hq/deb/conffiles ${_pkg_src}/hq/deb/postinst ${_pkg_src}/hq/deb/prerm
    ${_pkg_src}/hq/deb/postrm)
else()
  set(STOREGW_HQ_EXE_GENEX "")
endif()

if(CMAKE_READELF)
  set(STOREGW_READELF ${CMAKE_READELF})
else()
  find_program(STOREGW_READELF readelf REQUIRED)
endif()
configure_file(${_pkg_src}/CPackProjectConfig.cmake.in ${_pkg_out}/CPackProjectConfig.cmake.tmp @ONLY)
file(GENERATE OUTPUT ${_pkg_out}/CPackProjectConfig.cmake
  INPUT ${_pkg_out}/CPackProjectConfig.cmake.tmp)

include(CPack)

# storegw-hq's CPack config: storegw's, with the package chosen.
if(TARGET storegw-hq)
  file(WRITE ${CMAKE_BINARY_DIR}/CPackConfig-storegw-hq.cmake
    "# Generated by cmake/packaging.cmake: storegw's CPack config, building storegw-hq.\n"
    "include(\"${CMAKE_BINARY_DIR}/CPackConfig.cmake\")\n"
    "set(STOREGW_CPACK_PACKAGE storegw-hq)\n")
endif()
