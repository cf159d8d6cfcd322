#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "base/unique_fd.h"

namespace pullagent::agent {

// sd_notify(3) without libsystemd: datagrams of "KEY=value" lines to $NOTIFY_SOCKET (a path,
// or "@name" for the abstract namespace). Does nothing when the service was not started with
// Type=notify. The watchdog interval comes from $WATCHDOG_USEC (and $WATCHDOG_PID, when set,
// must be this process).
class SystemdNotifier {
 public:
  static SystemdNotifier fromEnvironment(const std::map<std::string, std::string>& environment);

  bool enabled() const { return fd_.valid(); }
  // Sends `state` ("READY=1", "STATUS=...\n..."); failures are logged once, never fatal.
  void notify(std::string_view state);
  // How often WATCHDOG=1 must arrive; the agent sends it at half this interval.
  std::optional<std::chrono::microseconds> watchdogInterval() const { return watchdog_; }

 private:
  UniqueFd fd_;
  std::string address_;
  std::optional<std::chrono::microseconds> watchdog_;
  bool warned_ = false;
};

}  // namespace pullagent::agent
