#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/unique_fd.h"

namespace pullagent::testing {

// The systemd side of sd_notify: a datagram socket at a path the test hands to the service as
// NOTIFY_SOCKET. Like systemd it reads continuously (on its own thread), keeping every message,
// and keeps a file descriptor store: files sent with FDSTORE=1 (SCM_RIGHTS) under their
// FDNAME, let go with FDSTOREREMOVE=1.
class NotifySocket {
 public:
  explicit NotifySocket(std::string path);
  ~NotifySocket();
  NotifySocket(const NotifySocket&) = delete;
  NotifySocket& operator=(const NotifySocket&) = delete;

  const std::string& path() const { return path_; }
  // Waits until a message from index `since` on satisfies `match` (true) or the timeout passes.
  bool waitFor(const std::function<bool(const std::string&)>& match,
               std::chrono::milliseconds timeout, size_t since = 0);
  // Shorthand: a message containing the line `line` ("READY=1", "WATCHDOG=1").
  bool waitForLine(const std::string& line, std::chrono::milliseconds timeout, size_t since = 0);
  // The index the next message will have: wait for what comes after now.
  size_t mark() const;
  std::string all() const;

  // The store: what a restarted service is given back (LISTEN_FDS), carried from one socket to
  // the next as systemd keeps it across restarts.
  std::map<std::string, UniqueFd> takeStored();
  void keepStored(std::map<std::string, UniqueFd> stored);
  std::vector<std::pair<std::string, int>> stored() const;  // names and descriptors, by name

 private:
  void receive(std::stop_token stop);

  std::string path_;
  int fd_ = -1;
  mutable std::mutex mutex_;
  std::condition_variable arrived_;
  std::vector<std::string> messages_;
  std::map<std::string, UniqueFd> stored_;
  std::jthread receiver_;
};

bool hasLine(const std::string& message, const std::string& line);

}  // namespace pullagent::testing
