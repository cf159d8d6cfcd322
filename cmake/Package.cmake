# The Debian package: `cmake --build build/release --target package` (or `cpack` in the build
# directory) writes pullagent_<version>_<arch>.deb with what `cmake --install` puts under /usr:
# the binary, the systemd unit and tmpfiles file, the example config and pullagent(8).
# Depends: the runtime packages of scripts/packages-runtime.txt (the same list the Dockerfile's
# runtime stage installs, checked against the binary by ctest dockerfile_lint). The libraries
# among them (lib*) are named by dpkg-shlibdeps from the binary itself, with the versions it
# needs, and so are the C and C++ runtimes; the rest (CA certificates, the seccomp profile) are
# listed here. scripts/check-package checks that every package of the list is in Depends.
file(STRINGS "${PROJECT_SOURCE_DIR}/scripts/packages-runtime.txt" runtime_lines)
set(runtime_packages "")
foreach(line IN LISTS runtime_lines)
  string(STRIP "${line}" line)
  if(line AND NOT line MATCHES "^#" AND NOT line MATCHES "^lib")
    list(APPEND runtime_packages "${line}")
  endif()
endforeach()
list(JOIN runtime_packages ", " runtime_depends)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME pullagent)
set(CPACK_PACKAGE_VENDOR "pullagent")
set(CPACK_PACKAGE_CONTACT "pullagent maintainers <pullagent@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "Pulls and publishes the container images of App Service-style Linux sites")
set(CPACK_PACKAGE_DESCRIPTION
    "pullagent keeps every site's container image pulled, verified, unpacked and published as a\n"
    "runtime bundle: managed identity and Azure Container Registry tokens, VNet DNS, mirrors,\n"
    "layer snapshots shared only with proof, resumable downloads and atomic publishes.")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_INSTALL_PREFIX /usr)
# The unit's ExecStart is written with the install prefix (cmake/Install.cmake): installing into
# a staging DESTDIR keeps that prefix /usr instead of the staging path.
set(CPACK_SET_DESTDIR ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "${runtime_depends}")
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA "${PROJECT_SOURCE_DIR}/systemd/debian/postinst"
    "${PROJECT_SOURCE_DIR}/systemd/debian/prerm" "${PROJECT_SOURCE_DIR}/systemd/debian/postrm")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_STRIP_FILES ON)
include(CPack)
