# ASan + UBSan as an INTERFACE target that our targets link; -fno-sanitize-recover makes any UB
# report fail the test that triggered it.
add_library(pullagent_sanitizers INTERFACE)
if(PULLAGENT_SANITIZE)
  set(_san -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
  target_compile_options(pullagent_sanitizers INTERFACE ${_san})
  target_link_options(pullagent_sanitizers INTERFACE ${_san})
endif()

# libFuzzer builds (clang only): every module gets coverage instrumentation plus ASan and UBSan;
# the fuzz targets themselves link libFuzzer's main (tests/fuzz).
option(PULLAGENT_FUZZ "Build the libFuzzer targets (needs clang)" OFF)
if(PULLAGENT_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "PULLAGENT_FUZZ needs clang (cmake --preset fuzz)")
  endif()
  set(_fuzz -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all
      -fno-omit-frame-pointer)
  target_compile_options(pullagent_sanitizers INTERFACE ${_fuzz})
  target_link_options(pullagent_sanitizers INTERFACE -fsanitize=address,undefined)
endif()
