# graft_add_plugin(NAME SOURCES a.cpp ... [CUDA_SOURCES k.cu ...] [CUDA_STUBS k_stub.cpp ...])
# With CUDA_SOURCES, where the CUDA language is enabled, the kernels are compiled and the plugin
# with GRAFT_PLUGIN_WITH_CUDA=1 (graft::kPluginHasCuda). Where it is not, CUDA_STUBS replace the
# kernels: the same functions, returning graft::kNoCudaKernels, so that the .cpp calls its
# kernels as ordinary code, without #if, in both builds.
# Builds graft_<NAME>.so: hidden visibility, one exported symbol, no undefined symbols.
function(graft_add_plugin name)
  cmake_parse_arguments(ARG "" "" "SOURCES;CUDA_SOURCES;CUDA_STUBS" ${ARGN})
  if(NOT ARG_SOURCES)
    message(FATAL_ERROR "graft_add_plugin(${name}): SOURCES is required")
  endif()
  set(target graft_${name})
  add_library(${target} MODULE ${ARG_SOURCES})
  # Without stubs the kernels are compiled whether or not CUDA is enabled, as before CUDA_STUBS
  # existed: a plugin that has only kernels needs the caller's enable_language(CUDA).
  get_property(languages GLOBAL PROPERTY ENABLED_LANGUAGES)
  if(ARG_CUDA_SOURCES AND ("CUDA" IN_LIST languages OR NOT ARG_CUDA_STUBS))
    find_package(CUDAToolkit REQUIRED)
    target_sources(${target} PRIVATE ${ARG_CUDA_SOURCES})
    # GRAFT_PLUGIN_WITH_CUDA (graft/cpp/device.hpp's kPluginHasCuda): require_device lets CUDA
    # tensors through, and kCudaEntry flags GRAFT_ENTRY_HAS_CUDA.
    target_compile_definitions(${target} PRIVATE GRAFT_PLUGIN_WITH_CUDA=1
      GRAFT_PLUGIN_CUDA_VERSION="${CMAKE_CUDA_COMPILER_VERSION}")
    target_link_libraries(${target} PRIVATE CUDA::cudart)  # the kernels' launches
  elseif(ARG_CUDA_STUBS)
    target_sources(${target} PRIVATE ${ARG_CUDA_STUBS})
  endif()
  target_link_libraries(${target} PRIVATE graft::sdk)
  set_target_properties(${target} PROPERTIES
    PREFIX ""
    CXX_VISIBILITY_PRESET hidden
    CUDA_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  target_link_options(${target} PRIVATE "LINKER:--version-script=${GRAFT_SDK_VERSION_SCRIPT}")
  # A sanitized build (graft's GRAFT_SANITIZE, clang) leaves the sanitizer runtime to the
  # executable that loads the plugin, so its symbols are undefined here by design.
  if(NOT GRAFT_SANITIZE)
    target_link_options(${target} PRIVATE "LINKER:--no-undefined")
  endif()
  set_property(TARGET ${target} APPEND PROPERTY LINK_DEPENDS "${GRAFT_SDK_VERSION_SCRIPT}")
  # Configured without a build type, CMake compiles with no optimisation at all, and a layer a
  # user times trains far slower than graft's own (1.45x in one user's report). Such a plugin
  # gets -O2; a build type the project chose stays its own.
  get_property(multi_config GLOBAL PROPERTY GENERATOR_IS_MULTI_CONFIG)
  if(NOT multi_config AND NOT CMAKE_BUILD_TYPE)
    target_compile_options(${target} PRIVATE -O2)
    message(STATUS "graft_add_plugin(${name}): no CMAKE_BUILD_TYPE, so compiled with -O2")
  endif()
endfunction()
