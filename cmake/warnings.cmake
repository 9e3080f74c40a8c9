# Warning flags for graft's own targets (not for users' out-of-tree plugins).
function(graft_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow
                                           -Wnon-virtual-dtor -Wno-missing-field-initializers
                                           # GCC 12 false positive on std::string concatenation (GCC bug 105329)
                                           -Wno-restrict)
  if(GRAFT_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
