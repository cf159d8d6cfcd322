# `cmake --install`: the binary, the systemd unit and tmpfiles file, the example config. With
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
install(FILES systemd/agent.example.json README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
