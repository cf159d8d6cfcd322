# ASan + UBSan as an INTERFACE target that our targets link; -fno-sanitize-recover makes any UB
# report fail the test that triggered it.
add_library(pullagent_sanitizers INTERFACE)
if(PULLAGENT_SANITIZE)
  # -O1, as AddressSanitizer's documentation advises for reasonable performance: at the Debug
  # build's -O0 the integration suite (SHA-256 and inflate in the agent processes) took 441 s
  # here, at -O1 163 s.
  set(_san -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -O1)
  target_compile_options(pullagent_sanitizers INTERFACE ${_san})
  target_link_options(pullagent_sanitizers INTERFACE ${_san})
endif()

# ThreadSanitizer (its own build: it cannot be combined with ASan). The download pool, the unpack
# worker beside it, the reconciler's site threads and curl's shared caches all run at once.
option(PULLAGENT_TSAN "Build with ThreadSanitizer" OFF)
if(PULLAGENT_TSAN)
  if(PULLAGENT_SANITIZE)
    message(FATAL_ERROR "PULLAGENT_TSAN and PULLAGENT_SANITIZE are separate builds")
  endif()
  set(_tsan -fsanitize=thread -fno-omit-frame-pointer)
  target_compile_options(pullagent_sanitizers INTERFACE ${_tsan})
  target_link_options(pullagent_sanitizers INTERFACE ${_tsan})
endif()

# The libFuzzer targets (clang only) are built in the ASan + UBSan build (the asan preset): the
# modules get libFuzzer's coverage instrumentation (pullagent_fuzz_coverage, linked PRIVATE by
# every module, so it does not spread to what links them), and the fuzz targets link libFuzzer's
# main (tests/fuzz). One build for both saves CI a whole build of the tree. The test programs
# are not instrumented: nothing fuzzes them.
option(PULLAGENT_FUZZ "Build the libFuzzer targets (needs clang and PULLAGENT_SANITIZE)" OFF)
add_library(pullagent_fuzz_coverage INTERFACE)
if(PULLAGENT_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "PULLAGENT_FUZZ needs clang (cmake --preset asan)")
  endif()
  if(NOT PULLAGENT_SANITIZE)
    message(FATAL_ERROR "PULLAGENT_FUZZ builds on PULLAGENT_SANITIZE (cmake --preset asan)")
  endif()
  target_compile_options(pullagent_fuzz_coverage INTERFACE -fsanitize=fuzzer-no-link)
endif()
