# Warnings are errors in every build of our own code.
set(STOREGW_WARNINGS -Wall -Wextra -Werror -Wno-missing-field-initializers)

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
  add_compile_options(-fsanitize=thread -fno-omit-frame-pointer)
  add_link_options(-fsanitize=thread)
endif()

# Hardened link flags for every executable.
add_link_options(-Wl,-z,relro -Wl,-z,now)

# storegw_target_defaults(target): our warning set on a target we own.
function(storegw_target_defaults target)
  target_compile_options(${target} PRIVATE ${STOREGW_WARNINGS})
endfunction()
