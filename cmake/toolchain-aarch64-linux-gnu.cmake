# Cross build for arm64 (aarch64) Debian on an amd64 Debian machine:
#     cmake -S . -B build/arm64/build -G Ninja \
#       -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-aarch64-linux-gnu.cmake \
#       -DSTOREGW_SYSROOT=$PWD/build/arm64/sysroot ...
# (packaging/build-arm64.sh does this, and makes the sysroot first with
# `packaging/install-deps.sh --arm64`).
#
# Compiler: Debian's cross compiler (crossbuild-essential-arm64:
# aarch64-linux-gnu-gcc/g++ 12, like the native g++ 12).
# Libraries and headers: STOREGW_SYSROOT, the :arm64 packages of every
# dependency unpacked into one directory (Debian's multiarch layout:
# usr/include, usr/include/aarch64-linux-gnu, usr/lib/aarch64-linux-gnu).
# Programs run at build time are the host's: protoc generates the protobuf
# code (same Debian protobuf version as the arm64 libprotobuf), gzip,
# readelf (CMAKE_READELF: the cross binutils' one).
# Programs of the target (test discovery, ctest) run under qemu-user:
# CMAKE_CROSSCOMPILING_EMULATOR, with the sysroot as qemu's library prefix.

set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)

set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)

# The sysroot: a cache variable (try_compile projects get it through
# CMAKE_TRY_COMPILE_PLATFORM_VARIABLES), the environment, or the default
# place packaging/build-arm64.sh uses.
if(NOT STOREGW_SYSROOT)
  if(DEFINED ENV{STOREGW_SYSROOT})
    set(STOREGW_SYSROOT "$ENV{STOREGW_SYSROOT}")
  else()
    get_filename_component(STOREGW_SYSROOT "${CMAKE_CURRENT_LIST_DIR}/../build/arm64/sysroot" ABSOLUTE)
  endif()
endif()
set(STOREGW_SYSROOT "${STOREGW_SYSROOT}" CACHE PATH "arm64 sysroot (packaging/install-deps.sh --arm64)")
if(NOT EXISTS "${STOREGW_SYSROOT}/usr/include/stdio.h")
  message(FATAL_ERROR "no arm64 sysroot at ${STOREGW_SYSROOT}: run packaging/install-deps.sh --arm64 "
                      "(or packaging/build-arm64.sh)")
endif()
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES STOREGW_SYSROOT)

set(CMAKE_SYSROOT "${STOREGW_SYSROOT}")
set(CMAKE_FIND_ROOT_PATH "${STOREGW_SYSROOT}")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# pkg-config: the sysroot's .pc files only, their paths prefixed with it.
set(ENV{PKG_CONFIG_DIR} "")
set(ENV{PKG_CONFIG_LIBDIR}
  "${STOREGW_SYSROOT}/usr/lib/aarch64-linux-gnu/pkgconfig:${STOREGW_SYSROOT}/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_SYSROOT_DIR} "${STOREGW_SYSROOT}")

# The host's protoc (FindProtobuf would otherwise look for it in the sysroot
# only through the program mode above; be explicit).
find_program(Protobuf_PROTOC_EXECUTABLE protoc PATHS /usr/bin NO_CMAKE_FIND_ROOT_PATH)

# Target programs run by the build (doctest test discovery) and ctest.
find_program(STOREGW_QEMU_AARCH64 qemu-aarch64-static NO_CMAKE_FIND_ROOT_PATH)
if(STOREGW_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR "${STOREGW_QEMU_AARCH64};-L;${STOREGW_SYSROOT}")
endif()
