#include "agent/daemon/fd_store.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>

#include <cstdlib>
#include <cstring>

namespace pullagent::agent {

bool FdStore::available() {
  const char* socket = std::getenv("NOTIFY_SOCKET");
  if (socket == nullptr || *socket == '\0')
    return false;
  // systemd 254 and later say how many files the store takes ($FDSTORE, set only when
  // FileDescriptorStoreMax= is above 0); for 252, which says nothing, the lazy-pulling drop-in
  // that sets FileDescriptorStoreMax= says so itself. Neither: no store, and the mounts are
  // unmounted at the end as before.
  const char* size = std::getenv("FDSTORE");
  const char* drop_in = std::getenv("PULLAGENT_FDSTORE");
  return (size != nullptr && std::atoi(size) > 0) || (drop_in != nullptr && *drop_in == '1');
}

std::map<std::string, UniqueFd> FdStore::takeGiven() {
  std::map<std::string, UniqueFd> given;
  char** names = nullptr;
  const int count = sd_listen_fds_with_names(1, &names);
  if (count < 0)
    spdlog::warn("the files systemd passed at start cannot be read: {}", std::strerror(-count));
  for (int i = 0; i < std::max(count, 0); ++i) {
    const int fd = SD_LISTEN_FDS_START + i;
    (void)::fcntl(fd, F_SETFD, FD_CLOEXEC);  // none of them is for a child
    const std::string name = names != nullptr && names[i] != nullptr ? names[i] : "unknown";
    if (!given.emplace(name, UniqueFd(fd)).second)
      spdlog::warn("systemd passed two files named {}: the second is closed", name);
  }
  if (names != nullptr) {
    for (int i = 0; names[i] != nullptr; ++i)
      std::free(names[i]);
    std::free(names);
  }
  return given;
}

Status FdStore::keep(const std::string& name, int fd) {
  const std::string state = "FDSTORE=1\nFDNAME=" + name;
  const int sent = sd_pid_notify_with_fds(0, 0, state.c_str(), &fd, 1);
  if (sent <= 0) {
    return makeError(ErrorCode::kUnavailable,
                     "systemd's file descriptor store did not take " + name + ": " +
                         (sent < 0 ? std::strerror(-sent) : "no $NOTIFY_SOCKET"));
  }
  return {};
}

Status FdStore::drop(const std::string& name) {
  const std::string state = "FDSTOREREMOVE=1\nFDNAME=" + name;
  const int sent = sd_notify(0, state.c_str());
  if (sent <= 0) {
    return makeError(ErrorCode::kUnavailable,
                     "systemd's file descriptor store was not told to let go of " + name + ": " +
                         (sent < 0 ? std::strerror(-sent) : "no $NOTIFY_SOCKET"));
  }
  return {};
}

}  // namespace pullagent::agent
