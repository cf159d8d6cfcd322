#pragma once

#include <chrono>
#include <optional>
#include <string_view>

namespace pullagent::agent {

// Talks to systemd through libsystemd's sd_notify(3) (every address form systemd uses: a path,
// the abstract namespace, vsock) and sd_watchdog_enabled(3). Does nothing when the service was
// not started with Type=notify.
class SystemdNotifier {
 public:
  // Reads $NOTIFY_SOCKET, $WATCHDOG_USEC and $WATCHDOG_PID of this process.
  static SystemdNotifier fromProcess();

  bool enabled() const { return enabled_; }
  // Sends `state` ("READY=1", "STATUS=...\n..."); failures are logged once, never fatal.
  void notify(std::string_view state);
  // How often WATCHDOG=1 must arrive; the agent sends it at half this interval. Unset when the
  // watchdog is off or meant for another process ($WATCHDOG_PID).
  std::optional<std::chrono::microseconds> watchdogInterval() const { return watchdog_; }

 private:
  bool enabled_ = false;
  std::optional<std::chrono::microseconds> watchdog_;
  bool warned_ = false;
};

}  // namespace pullagent::agent
