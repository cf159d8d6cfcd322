# Our warnings, for our own targets only: they link pullagent_warnings, third-party headers come
# in as SYSTEM includes and are not affected. They are errors with PULLAGENT_WERROR, which the
# presets and CI turn on; a packager's build (another compiler, other flags) is not broken by a
# warning that a newer compiler invents.
option(PULLAGENT_WERROR "Treat warnings as errors (on in the presets and CI)" OFF)
add_library(pullagent_warnings INTERFACE)
target_compile_options(pullagent_warnings INTERFACE
  -Wall -Wextra -Wpedantic
  -Wshadow -Wnon-virtual-dtor -Wold-style-cast -Wcast-align -Wunused -Woverloaded-virtual
  -Wconversion -Wsign-conversion -Wnull-dereference -Wdouble-promotion -Wformat=2
  -Wimplicit-fallthrough)
# GCC 12 at -O3 reports -Wrestrict on libstdc++'s own `"literal" + std::string` (GCC PR 105329,
# fixed in GCC 13): a false positive in every file that concatenates strings so. Off there only.
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
  target_compile_options(pullagent_warnings INTERFACE -Wno-restrict)
endif()
if(PULLAGENT_WERROR)
  target_compile_options(pullagent_warnings INTERFACE -Werror)
endif()
