# `cmake --install`: the binary, the systemd unit and tmpfiles file, the example config, the docs
# and the man page pullagent(8). With
# the packaging prefix (`cmake --install build/release --prefix /usr`): /usr/bin/pullagent,
# /usr/lib/systemd/system/pullagent.service, /usr/lib/tmpfiles.d/pullagent.conf and
# /usr/share/doc/pullagent/agent.example.json. The unit's ExecStart follows the prefix.
include(GNUInstallDirs)

install(TARGETS pullagent RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(CODE "
  file(READ \"${PROJECT_SOURCE_DIR}/systemd/pullagent.service\" unit)
  string(REPLACE \"/usr/bin/pullagent\" \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_BINDIR}/pullagent\"
    unit \"\${unit}\")
  set(target \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/lib/systemd/system/pullagent.service\")
  message(STATUS \"Installing: \${target}\")
  file(WRITE \"\${target}\" \"\${unit}\")
")
install(FILES systemd/pullagent.conf DESTINATION lib/tmpfiles.d)
install(FILES systemd/agent.example.json systemd/lazy-pulling.conf README.md
        DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(DIRECTORY docs/ DESTINATION ${CMAKE_INSTALL_DOCDIR}/docs FILES_MATCHING PATTERN "*.md"
        PATTERN "pullagent.8.md" EXCLUDE)

# pullagent(8), made from docs/pullagent.8.md with go-md2man (Debian's, as podman's man pages
# are), compressed as Debian installs man pages. A packager without go-md2man turns it off.
option(PULLAGENT_MAN_PAGE "Make and install the man page pullagent(8) (needs go-md2man)" ON)
if(PULLAGENT_MAN_PAGE)
  find_program(PULLAGENT_GO_MD2MAN go-md2man REQUIRED)
  set(man_page "${PROJECT_BINARY_DIR}/pullagent.8")
  add_custom_command(
    OUTPUT "${man_page}.gz"
    COMMAND ${PULLAGENT_GO_MD2MAN} -in "${PROJECT_SOURCE_DIR}/docs/pullagent.8.md" -out "${man_page}"
    COMMAND gzip -9nf "${man_page}"
    DEPENDS "${PROJECT_SOURCE_DIR}/docs/pullagent.8.md"
    COMMENT "Making the man page pullagent(8) from docs/pullagent.8.md"
    VERBATIM)
  add_custom_target(pullagent_man_page ALL DEPENDS "${man_page}.gz")
  install(FILES "${man_page}.gz" DESTINATION ${CMAKE_INSTALL_MANDIR}/man8)
endif()
