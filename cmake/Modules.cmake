# Modules: one static library per directory, with the modules it may use declared. The build
# enforces the direction: every module's sources and headers are scanned (cmake/CheckIncludes.cmake)
# before it compiles, and an `#include "<module>/..."` of a module that is neither the module
# itself nor one of its declared dependencies fails the build, naming the file. Declared means
# directly: a module that includes a header of base declares base, even if another of its
# dependencies brings base along. The executable and the test suites are checked the same way.
# Abseil's per-component targets are the model; the include graph stays a DAG by construction.
#
#   pullagent_module(<name> DIR <dir> SOURCES <files...> DEPENDS <modules...>
#                    [PUBLIC_LIBS <targets...>] [PRIVATE_LIBS <targets...>])
#
# creates target pullagent_<name> from <dir>/<files>.
set_property(GLOBAL PROPERTY PULLAGENT_MODULES "")

function(pullagent_module name)
  cmake_parse_arguments(PARSE_ARGV 1 M "" "DIR" "SOURCES;DEPENDS;PUBLIC_LIBS;PRIVATE_LIBS")
  set(target pullagent_${name})
  list(TRANSFORM M_SOURCES PREPEND "${PROJECT_SOURCE_DIR}/${M_DIR}/")
  add_library(${target} STATIC ${M_SOURCES})
  pullagent_target_defaults(${target})
  target_link_libraries(${target} PRIVATE pullagent_fuzz_coverage)
  set(deps "")
  foreach(dep IN LISTS M_DEPENDS)
    if(NOT TARGET pullagent_${dep})
      message(FATAL_ERROR "module ${name}: dependency ${dep} is not a module defined before it")
    endif()
    list(APPEND deps pullagent_${dep})
  endforeach()
  target_link_libraries(${target} PUBLIC ${deps} ${M_PUBLIC_LIBS} PRIVATE ${M_PRIVATE_LIBS})

  set_property(GLOBAL PROPERTY PULLAGENT_MODULE_DIR_${name} "${M_DIR}")
  set_property(GLOBAL APPEND PROPERTY PULLAGENT_MODULE_NAMES ${name})
  set_property(GLOBAL APPEND PROPERTY PULLAGENT_MODULES "${M_DIR}")

  file(GLOB headers CONFIGURE_DEPENDS "${PROJECT_SOURCE_DIR}/${M_DIR}/*.h")
  pullagent_check_includes(${target} NAME "module ${name}" DIR "${M_DIR}"
                           FILES ${M_SOURCES} ${headers} DEPENDS ${M_DEPENDS})
endfunction()

# Checks, before `target` compiles, that FILES include only headers of DIR (when given) and of
# the modules in DEPENDS: direct dependencies, not what they bring along, so that every module,
# the executable and the test suites declare what they use. NAME is how errors call it.
function(pullagent_check_includes target)
  cmake_parse_arguments(PARSE_ARGV 1 C "" "NAME;DIR" "FILES;DEPENDS")
  set(allowed ${C_DIR})
  foreach(dep IN LISTS C_DEPENDS)
    get_property(dep_dir GLOBAL PROPERTY PULLAGENT_MODULE_DIR_${dep})
    if(NOT dep_dir)
      message(FATAL_ERROR "${C_NAME}: dependency ${dep} is not a module defined before it")
    endif()
    list(APPEND allowed "${dep_dir}")
  endforeach()
  string(MAKE_C_IDENTIFIER "${target}" stamp_name)
  set(stamp "${CMAKE_CURRENT_BINARY_DIR}/${stamp_name}.includes-checked")
  add_custom_command(
    OUTPUT "${stamp}"
    COMMAND ${CMAKE_COMMAND} "-DMODULE=${C_NAME}" "-DALLOWED=${allowed}"
            "-DFILES=${C_FILES}" "-DSTAMP=${stamp}"
            "-DMODULES_FILE=${PROJECT_BINARY_DIR}/pullagent-modules.txt"
            -P "${PROJECT_SOURCE_DIR}/cmake/CheckIncludes.cmake"
    DEPENDS ${C_FILES} "${PROJECT_SOURCE_DIR}/cmake/CheckIncludes.cmake"
            "${PROJECT_BINARY_DIR}/pullagent-modules.txt"
    COMMENT "Checking the includes of ${C_NAME}"
    VERBATIM)
  add_custom_target(${target}_includes DEPENDS "${stamp}")
  add_dependencies(${target} ${target}_includes)
endfunction()

# After every module is defined: the list of module directories that the check maps an
# include to (the longest matching directory owns a header).
function(pullagent_write_module_list)
  get_property(modules GLOBAL PROPERTY PULLAGENT_MODULES)
  file(CONFIGURE OUTPUT "${PROJECT_BINARY_DIR}/pullagent-modules.txt" CONTENT "${modules}")
endfunction()
