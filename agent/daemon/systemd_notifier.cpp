#include "agent/daemon/systemd_notifier.h"

#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

namespace pullagent::agent {

SystemdNotifier SystemdNotifier::fromEnvironment(
    const std::map<std::string, std::string>& environment) {
  SystemdNotifier notifier;
  auto socket_path = environment.find("NOTIFY_SOCKET");
  if (socket_path != environment.end() && !socket_path->second.empty() &&
      (socket_path->second[0] == '/' || socket_path->second[0] == '@') &&
      socket_path->second.size() < sizeof(sockaddr_un::sun_path)) {
    notifier.address_ = socket_path->second;
    notifier.fd_ = UniqueFd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  }
  auto usec = environment.find("WATCHDOG_USEC");
  auto pid = environment.find("WATCHDOG_PID");
  const bool for_us = pid == environment.end() || pid->second == std::to_string(::getpid());
  if (usec != environment.end() && for_us) {
    long long value = 0;
    auto [end, error] =
        std::from_chars(usec->second.data(), usec->second.data() + usec->second.size(), value);
    if (error == std::errc() && end == usec->second.data() + usec->second.size() && value > 0)
      notifier.watchdog_ = std::chrono::microseconds(value);
  }
  return notifier;
}

void SystemdNotifier::notify(std::string_view state) {
  if (!enabled())
    return;
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, address_.data(), address_.size());
  if (address_[0] == '@')
    address.sun_path[0] = '\0';  // abstract namespace: no terminating NUL counted
  const auto length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address_.size() +
                                             (address_[0] == '@' ? 0 : 1));
  // Never blocks: a stalled reader must not stall the loop that also feeds the watchdog.
  if (::sendto(fd_.get(), state.data(), state.size(), MSG_NOSIGNAL | MSG_DONTWAIT,
               reinterpret_cast<const sockaddr*>(&address), length) < 0 &&
      !warned_) {
    warned_ = true;
    spdlog::warn("cannot notify systemd at {}: {}", address_, std::strerror(errno));
  }
}

}  // namespace pullagent::agent
