#pragma once

#include <stop_token>
#include <string>
#include <vector>

namespace pullagent::agent {

struct ProcessEnvironment {
  bool stderr_is_terminal = false;
  std::stop_token stop;            // requested on SIGINT / SIGTERM
  bool privileged = false;         // running as root: ownership, devices, capabilities applied
  bool stderr_is_journal = false;  // JOURNAL_STREAM names our stderr: log as journald reads it
  int reload_fd = -1;  // an eventfd that becomes readable on SIGHUP (the daemon reloads)
};

// `pullagent pull IMAGE --dest DIR ...`: pulls an image into an OCI image layout. Returns the
// process exit code (see exit_codes.h).
int runPullCommand(const std::vector<std::string>& args, const ProcessEnvironment& env);

}  // namespace pullagent::agent
