# Warnings are on in every build of our own code. They are errors only where
# the project asks for it (STOREGW_WERROR: the presets in CMakePresets.json
# and CI turn it on): a user's or a distribution's plain
# `cmake -DCMAKE_BUILD_TYPE=Release` must not fail because a newer compiler
# found something new to warn about.
option(STOREGW_WERROR "Treat compiler warnings as errors (on in the presets and CI)" OFF)
set(STOREGW_WARNINGS -Wall -Wextra -Wno-missing-field-initializers)
if(STOREGW_WERROR)
  list(APPEND STOREGW_WARNINGS -Werror)
endif()

if(STOREGW_SANITIZE OR STOREGW_TSAN)
  # GCC 12 reports false -Wmaybe-uninitialized inside libstdc++ (std::regex,
  # std::function) when the sanitizers change inlining; the default build keeps it.
  list(APPEND STOREGW_WARNINGS -Wno-maybe-uninitialized)
endif()

if(STOREGW_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all)
  add_link_options(-fsanitize=address,undefined)
endif()
if(STOREGW_TSAN)
  # -U__SANITIZE_THREAD__: protobuf 3.21's map_field.h gives MapFieldBase two
  # extra members when __SANITIZE_THREAD__ is defined (GCC defines it under
  # -fsanitize=thread). Debian's libprotobuf is built without TSan, so code
  # compiled with the macro disagrees with the library on the layout of every
  # message with a map field (google.protobuf.Struct/Value in the JSON
  # paths), and inline Map code then reads garbage and crashes (SEGV in
  # map.h; not the "unexpected memory mapping" of kernels with a high
  # vm.mmap_rnd_bits). libstdc++'s only use of the macro is to define
  # _GLIBCXX_TSAN, which we keep. STOREGW_TSAN_BUILD tells our code (TSan
  # suppressions) that it is a TSan build.
  add_compile_options(-fsanitize=thread -fno-omit-frame-pointer -U__SANITIZE_THREAD__
                      -D_GLIBCXX_TSAN=1 -DSTOREGW_TSAN_BUILD=1)
  add_link_options(-fsanitize=thread)
endif()

# ASan+UBSan and libFuzzer build (preset "asan", clang only): everything is
# instrumented for coverage and built with ASan+UBSan; only the fuzz
# binaries link the libFuzzer driver (tests/fuzz/CMakeLists.txt adds
# -fsanitize=fuzzer); the unit tests of the same build run under the same
# sanitizers (the coverage hooks are no-ops without the driver). One build
# serves both: a second sanitizer build of the same code cost CI about as
# long as the whole test suite.
option(STOREGW_FUZZ "Build the libFuzzer targets (clang)" OFF)
if(STOREGW_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "STOREGW_FUZZ needs clang (cmake --preset asan)")
  endif()
  add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer
                      -fno-sanitize-recover=all)
  add_link_options(-fsanitize=address,undefined)
endif()

# Hardened link flags for every executable.
add_link_options(-Wl,-z,relro -Wl,-z,now)

# storegw_target_defaults(target): our warning set on a target we own.
function(storegw_target_defaults target)
  target_compile_options(${target} PRIVATE ${STOREGW_WARNINGS})
endfunction()
