#pragma once

#include <stop_token>

namespace pullagent::agent {

// What main() learnt about the process, for every command: signals, privileges, where stderr goes.
struct ProcessEnvironment {
  bool stderr_is_terminal = false;
  std::stop_token stop;            // requested on SIGINT / SIGTERM
  bool privileged = false;         // running as root: ownership, devices, capabilities applied
  bool stderr_is_journal = false;  // JOURNAL_STREAM names our stderr: log as journald reads it
  int reload_fd = -1;  // an eventfd that becomes readable on SIGHUP (the daemon reloads)
  // Images in the state dir are published over layer snapshots (chosen at start from the
  // agent config's `storage`, see agent/site/storage_choice.h).
  bool snapshots = false;
};

}  // namespace pullagent::agent
