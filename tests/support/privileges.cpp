#include "tests/support/privileges.h"

#include <sched.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "tests/support/temp_dir.h"

namespace pullagent::testing {

std::optional<std::string> cannotUseMountNamespaces() {
  if (::geteuid() != 0)
    return "needs root";
  // In a child, so that this process keeps its namespace.
  const pid_t child = ::fork();
  if (child == 0)
    ::_exit(::unshare(CLONE_NEWNS) == 0 ? 0 : errno);
  int status = 0;
  if (child < 0 || ::waitpid(child, &status, 0) != child || !WIFEXITED(status))
    return "cannot probe for mount namespaces";
  if (WEXITSTATUS(status) != 0)
    return std::string("unshare mount namespace: ") + std::strerror(WEXITSTATUS(status));
  return std::nullopt;
}

std::optional<std::string> cannotMakeDeviceNodes() {
  if (::geteuid() != 0)
    return "needs root";
  TempDir dir;
  const auto probe = dir / "probe";
  if (::mknod(probe.c_str(), S_IFCHR | 0600, makedev(1, 3)) != 0)
    return std::string("device nodes cannot be created here: ") + std::strerror(errno);
  return std::nullopt;
}

}  // namespace pullagent::testing
