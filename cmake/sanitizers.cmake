# Sanitizer and fuzzing builds (README "Sanitizers and fuzzing"): flags for every C and C++
# target of the build, plugins included, so a memory error in a plugin is caught like one in the
# runtime. Configure a build folder of its own with clang:
#
#   CC=clang CXX=clang++ cmake -S . -B build-asan -DGRAFT_SANITIZE=address,undefined -DGRAFT_FUZZ=ON
#   CC=clang CXX=clang++ cmake -S . -B build-tsan -DGRAFT_SANITIZE=thread
#
# GRAFT_FUZZ adds the libFuzzer targets of tests/fuzz (clang only).
set(GRAFT_SANITIZE "" CACHE STRING
    "Sanitizers for every target: address,undefined or thread (empty: none)")
option(GRAFT_FUZZ "Build the libFuzzer targets of tests/fuzz (clang)" OFF)

if(GRAFT_SANITIZE)
  string(REPLACE "," ";" sanitizers "${GRAFT_SANITIZE}")
  foreach(s IN LISTS sanitizers)
    if(NOT s MATCHES "^(address|undefined|thread)$")
      message(FATAL_ERROR "GRAFT_SANITIZE=${GRAFT_SANITIZE}: '${s}' is not one of address, "
                          "undefined, thread (e.g. -DGRAFT_SANITIZE=address,undefined)")
    endif()
  endforeach()
  if("thread" IN_LIST sanitizers AND "address" IN_LIST sanitizers)
    message(FATAL_ERROR "GRAFT_SANITIZE=${GRAFT_SANITIZE}: thread and address cannot share a "
                        "build; configure two build folders")
  endif()
  # nvcc compiles no sanitized host code, and a GPU is not where these checks run.
  if(GRAFT_CUDA STREQUAL "ON")
    message(FATAL_ERROR "GRAFT_SANITIZE and GRAFT_CUDA=ON: sanitizer builds are CPU builds; "
                        "configure with -DGRAFT_CUDA=OFF")
  endif()
  set(GRAFT_CUDA OFF CACHE STRING "" FORCE)
  # Any report fails the test that made it: no recovery after a UBSan finding; frame pointers
  # and line tables for whole stacks in the reports.
  set(flags -fsanitize=${GRAFT_SANITIZE} -fno-omit-frame-pointer -g)
  if("undefined" IN_LIST sanitizers)
    list(APPEND flags -fno-sanitize-recover=all)
  endif()
  add_compile_options("$<$<COMPILE_LANGUAGE:C,CXX>:${flags}>")
  add_link_options(-fsanitize=${GRAFT_SANITIZE})
  message(STATUS "graft: sanitizers ${GRAFT_SANITIZE} on every target (${CMAKE_CXX_COMPILER_ID})")
endif()

if(GRAFT_FUZZ AND NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
  message(FATAL_ERROR "GRAFT_FUZZ needs clang's libFuzzer: configure with "
                      "CC=clang CXX=clang++ (Debian's clang package)")
endif()
