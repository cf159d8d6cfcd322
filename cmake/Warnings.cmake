# Warnings are errors for our own targets only: they link pullagent_warnings, third-party headers
# come in as SYSTEM includes and are not affected.
add_library(pullagent_warnings INTERFACE)
target_compile_options(pullagent_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Werror
  -Wshadow -Wnon-virtual-dtor -Wold-style-cast -Wcast-align -Wunused -Woverloaded-virtual
  -Wconversion -Wsign-conversion -Wnull-dereference -Wdouble-promotion -Wformat=2
  -Wimplicit-fallthrough)
