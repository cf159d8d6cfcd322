# ASan + UBSan as an INTERFACE target that our targets link; -fno-sanitize-recover makes any UB
# report fail the test that triggered it.
add_library(pullagent_sanitizers INTERFACE)
if(PULLAGENT_SANITIZE)
  set(_san -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
  target_compile_options(pullagent_sanitizers INTERFACE ${_san})
  target_link_options(pullagent_sanitizers INTERFACE ${_san})
endif()
