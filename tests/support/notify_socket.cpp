#include "tests/support/notify_socket.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <sstream>
#include <stdexcept>

namespace pullagent::testing {

NotifySocket::NotifySocket(std::string path) : path_(std::move(path)) {
  fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (fd_ < 0 || path_.size() >= sizeof address.sun_path)
    throw std::runtime_error("notify socket: " + path_);
  std::memcpy(address.sun_path, path_.c_str(), path_.size() + 1);
  ::unlink(path_.c_str());
  if (::bind(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0)
    throw std::runtime_error("bind " + path_ + ": " + std::strerror(errno));
  receiver_ = std::jthread([this](std::stop_token stop) { receive(stop); });
}

NotifySocket::~NotifySocket() {
  receiver_.request_stop();
  receiver_.join();
  ::close(fd_);
  ::unlink(path_.c_str());
}

void NotifySocket::receive(std::stop_token stop) {
  while (!stop.stop_requested()) {
    pollfd fd{fd_, POLLIN, 0};
    if (::poll(&fd, 1, 50) <= 0)
      continue;
    char buffer[4096];
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 16)];
    iovec data{buffer, sizeof buffer};
    msghdr message{};
    message.msg_iov = &data;
    message.msg_iovlen = 1;
    message.msg_control = control;
    message.msg_controllen = sizeof control;
    ssize_t n = ::recvmsg(fd_, &message, MSG_CMSG_CLOEXEC);
    if (n <= 0)
      continue;
    std::vector<UniqueFd> fds;
    for (cmsghdr* header = CMSG_FIRSTHDR(&message); header != nullptr;
         header = CMSG_NXTHDR(&message, header)) {
      if (header->cmsg_level != SOL_SOCKET || header->cmsg_type != SCM_RIGHTS)
        continue;
      const size_t count = (header->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < count; ++i) {
        int received = -1;
        std::memcpy(&received, CMSG_DATA(header) + i * sizeof(int), sizeof received);
        fds.emplace_back(received);
      }
    }
    const std::string text(buffer, static_cast<size_t>(n));
    {
      std::lock_guard lock(mutex_);
      std::string name = "stored";
      std::istringstream lines(text);
      for (std::string line; std::getline(lines, line);) {
        if (line.starts_with("FDNAME="))
          name = line.substr(7);
      }
      if (hasLine(text, "FDSTORE=1") && !fds.empty())
        stored_[name] = std::move(fds.front());
      if (hasLine(text, "FDSTOREREMOVE=1"))
        stored_.erase(name);
      messages_.push_back(text);
    }
    arrived_.notify_all();
  }
}

std::map<std::string, UniqueFd> NotifySocket::takeStored() {
  std::lock_guard lock(mutex_);
  return std::exchange(stored_, {});
}

void NotifySocket::keepStored(std::map<std::string, UniqueFd> stored) {
  std::lock_guard lock(mutex_);
  for (auto& [name, fd] : stored)
    stored_[name] = std::move(fd);
}

std::vector<std::pair<std::string, int>> NotifySocket::stored() const {
  std::lock_guard lock(mutex_);
  std::vector<std::pair<std::string, int>> out;
  for (const auto& [name, fd] : stored_)
    out.emplace_back(name, fd.get());
  return out;
}

bool NotifySocket::waitFor(const std::function<bool(const std::string&)>& match,
                           std::chrono::milliseconds timeout, size_t since) {
  std::unique_lock lock(mutex_);
  size_t examined = since;
  return arrived_.wait_for(lock, timeout, [&] {
    for (; examined < messages_.size(); ++examined) {
      if (match(messages_[examined]))
        return true;
    }
    return false;
  });
}

bool NotifySocket::waitForLine(const std::string& line, std::chrono::milliseconds timeout,
                               size_t since) {
  return waitFor([&](const std::string& message) { return hasLine(message, line); }, timeout,
                 since);
}

size_t NotifySocket::mark() const {
  std::lock_guard lock(mutex_);
  return messages_.size();
}

std::string NotifySocket::all() const {
  std::lock_guard lock(mutex_);
  std::string text;
  for (const auto& message : messages_)
    text += "[" + message + "]\n";
  return text;
}

bool hasLine(const std::string& message, const std::string& line) {
  std::istringstream lines(message);
  std::string each;
  while (std::getline(lines, each)) {
    if (each == line)
      return true;
  }
  return false;
}

}  // namespace pullagent::testing
