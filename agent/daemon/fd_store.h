#pragma once

#include <map>
#include <string>

#include "base/error.h"
#include "base/unique_fd.h"

namespace pullagent::agent {

// systemd's file descriptor store (sd_notify(3) FDSTORE=1): files systemd keeps for the service
// across its restarts and gives back at the next start ($LISTEN_FDS, $LISTEN_FDNAMES). The
// service keeps its lazy layers' FUSE connections there (docs/lazy.md, "Restarts"); the unit
// sets FileDescriptorStoreMax=. Without $NOTIFY_SOCKET there is no store.
class FdStore {
 public:
  // Whether this process has a store: started by systemd with a notify socket, and told that
  // the store takes files ($FDSTORE from systemd 254, or $PULLAGENT_FDSTORE=1 from the
  // lazy-pulling drop-in).
  static bool available();
  // The files systemd gave this process at start, by name ($LISTEN_FDNAMES), close-on-exec
  // from now on. Taken once: the environment is cleared.
  static std::map<std::string, UniqueFd> takeGiven();
  // Stores a copy of `fd` under `name`; storing it again is harmless (systemd keeps one).
  static Status keep(const std::string& name, int fd);
  // systemd closes what it keeps under `name`.
  static Status drop(const std::string& name);
};

}  // namespace pullagent::agent
