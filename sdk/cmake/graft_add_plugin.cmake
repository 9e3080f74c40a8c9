# graft_add_plugin(NAME SOURCES a.cpp ... [CUDA_SOURCES k.cu ...])
# With CUDA_SOURCES the plugin is compiled with GRAFT_PLUGIN_WITH_CUDA=1.
# Builds graft_<NAME>.so: hidden visibility, one exported symbol, no undefined symbols.
function(graft_add_plugin name)
  cmake_parse_arguments(ARG "" "" "SOURCES;CUDA_SOURCES" ${ARGN})
  if(NOT ARG_SOURCES)
    message(FATAL_ERROR "graft_add_plugin(${name}): SOURCES is required")
  endif()
  set(target graft_${name})
  add_library(${target} MODULE ${ARG_SOURCES})
  if(ARG_CUDA_SOURCES)
    # The caller enables CUDA (enable_language(CUDA)); the kernels need the CUDA runtime.
    find_package(CUDAToolkit REQUIRED)
    target_sources(${target} PRIVATE ${ARG_CUDA_SOURCES})
    # GRAFT_PLUGIN_WITH_CUDA: the .cpp may call its kernels (and flag GRAFT_ENTRY_HAS_CUDA).
    target_compile_definitions(${target} PRIVATE GRAFT_PLUGIN_WITH_CUDA=1
      GRAFT_PLUGIN_CUDA_VERSION="${CMAKE_CUDA_COMPILER_VERSION}")
    target_link_libraries(${target} PRIVATE CUDA::cudart)
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
endfunction()
