#include "agent/daemon/systemd_notifier.h"

#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

namespace pullagent::agent {

SystemdNotifier SystemdNotifier::fromProcess() {
  SystemdNotifier notifier;
  const char* socket = std::getenv("NOTIFY_SOCKET");
  notifier.enabled_ = socket != nullptr && *socket != '\0';
  uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0)
    notifier.watchdog_ = std::chrono::microseconds(usec);
  return notifier;
}

void SystemdNotifier::notify(std::string_view state) {
  if (!enabled_)
    return;
  const int sent = sd_notify(0, std::string(state).c_str());
  if (sent < 0 && !warned_) {
    warned_ = true;
    spdlog::warn("cannot notify systemd at $NOTIFY_SOCKET: {}", std::strerror(-sent));
  }
}

}  // namespace pullagent::agent
