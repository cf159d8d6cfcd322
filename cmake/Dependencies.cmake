# Every dependency comes from a Debian 12 package (scripts/packages-build.txt).
find_package(PkgConfig REQUIRED)
pkg_check_modules(CURL REQUIRED IMPORTED_TARGET libcurl>=7.88)
pkg_check_modules(CARES REQUIRED IMPORTED_TARGET libcares>=1.18)
pkg_check_modules(ZLIB REQUIRED IMPORTED_TARGET zlib)
pkg_check_modules(ISAL REQUIRED IMPORTED_TARGET libisal>=2.30)
pkg_check_modules(ZSTD REQUIRED IMPORTED_TARGET libzstd>=1.4)
# The service's endpoints: metric types and the text format (prometheus-cpp's core library;
# its civetweb exposer is not used), the HTTP server, and sd_notify.
pkg_check_modules(PROMETHEUS REQUIRED IMPORTED_TARGET prometheus-cpp-core>=1.0)
pkg_check_modules(MICROHTTPD REQUIRED IMPORTED_TARGET libmicrohttpd>=0.9.75)
pkg_check_modules(SYSTEMD REQUIRED IMPORTED_TARGET libsystemd>=252)
# eStargz layers mounted before their bytes are on disk (puller/lazy, issue 28).
pkg_check_modules(FUSE3 REQUIRED IMPORTED_TARGET fuse3>=3.14)
find_package(OpenSSL 3 REQUIRED)
find_package(nlohmann_json 3.10 REQUIRED)
find_package(LibArchive 3.6 REQUIRED)
find_package(spdlog 1.10 REQUIRED)
find_package(fmt REQUIRED)
# hosts.toml (registry mirrors), header-only.
find_package(toml11 3.7 REQUIRED)
# Compose files of COMPOSE| sites.
pkg_check_modules(YAMLCPP REQUIRED IMPORTED_TARGET yaml-cpp>=0.7)
find_package(Threads REQUIRED)

# Flags every library of ours gets (modules and test support): our warnings, optional
# sanitizers, includes from the source root.
function(pullagent_target_defaults target)
  target_link_libraries(${target} PRIVATE pullagent_warnings PUBLIC pullagent_sanitizers)
  target_include_directories(${target} PUBLIC ${PROJECT_SOURCE_DIR})
endfunction()
