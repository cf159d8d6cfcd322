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
