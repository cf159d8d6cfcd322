#include "agent/daemon/listen_address.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <cerrno>
#include <charconv>
#include <cstring>

namespace pullagent::agent {
namespace {

// Room for a burst of scrapers and clients; the server accepts as fast as they arrive.
constexpr int kBacklog = 128;

Error socketError(const std::string& what, const std::string& address, const std::string& op) {
  const int err = errno;
  return makeError(ErrorCode::kInvalidArgument,
                   what + " " + address + ": " + op + ": " + std::strerror(err), err);
}

Result<Listener> listenUnix(const std::string& path, const std::string& address,
                            const std::string& what, std::optional<mode_t> mode) {
  sockaddr_un addr{};
  if (path.empty() || path[0] != '/' || path.size() >= sizeof addr.sun_path) {
    return makeError(ErrorCode::kInvalidArgument,
                     what + " " + address + ": expected an absolute socket path");
  }
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  Listener listener;
  listener.fd = UniqueFd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!listener.fd.valid())
    return socketError(what, address, "socket");
  struct stat info {};
  if (::lstat(path.c_str(), &info) == 0 && S_ISSOCK(info.st_mode))
    ::unlink(path.c_str());
  if (::bind(listener.fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0)
    return socketError(what, address, "bind");
  listener.unix_path = path;
  // Before listen(): nobody can connect in the moment between bind and chmod.
  if (mode && ::chmod(path.c_str(), *mode) != 0) {
    auto error = socketError(what, address, "chmod");
    ::unlink(path.c_str());
    return error;
  }
  listener.bound = path;
  return listener;
}

Result<Listener> listenTcp(const std::string& address, const std::string& what) {
  auto colon = address.rfind(':');
  if (colon == std::string::npos) {
    return makeError(ErrorCode::kInvalidArgument,
                     what + " " + address + ": expected host:port or unix:/path");
  }
  std::string host = address.substr(0, colon);
  const std::string port_text = address.substr(colon + 1);
  int port = -1;
  auto [end, error] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (error != std::errc() || end != port_text.data() + port_text.size() || port < 0 ||
      port > 65535) {
    return makeError(ErrorCode::kInvalidArgument, what + " " + address + ": bad port");
  }
  const bool v6 = host.size() >= 2 && host.front() == '[' && host.back() == ']';
  if (v6)
    host = host.substr(1, host.size() - 2);
  sockaddr_storage storage{};
  socklen_t length = 0;
  if (v6) {
    auto* addr = reinterpret_cast<sockaddr_in6*>(&storage);
    addr->sin6_family = AF_INET6;
    addr->sin6_port = htons(static_cast<uint16_t>(port));
    if (::inet_pton(AF_INET6, host.c_str(), &addr->sin6_addr) != 1)
      return makeError(ErrorCode::kInvalidArgument, what + " " + address + ": bad IPv6");
    length = sizeof(sockaddr_in6);
  } else {
    auto* addr = reinterpret_cast<sockaddr_in*>(&storage);
    addr->sin_family = AF_INET;
    addr->sin_port = htons(static_cast<uint16_t>(port));
    if (::inet_pton(AF_INET, host.c_str(), &addr->sin_addr) != 1) {
      return makeError(ErrorCode::kInvalidArgument,
                       what + " " + address + ": expected an IP address, not a name");
    }
    length = sizeof(sockaddr_in);
  }
  Listener listener;
  listener.fd = UniqueFd(::socket(storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!listener.fd.valid())
    return socketError(what, address, "socket");
  int one = 1;
  ::setsockopt(listener.fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(listener.fd.get(), reinterpret_cast<const sockaddr*>(&storage), length) != 0)
    return socketError(what, address, "bind");
  sockaddr_storage actual{};
  socklen_t actual_length = sizeof actual;
  ::getsockname(listener.fd.get(), reinterpret_cast<sockaddr*>(&actual), &actual_length);
  const uint16_t actual_port = ntohs(v6 ? reinterpret_cast<sockaddr_in6*>(&actual)->sin6_port
                                        : reinterpret_cast<sockaddr_in*>(&actual)->sin_port);
  listener.bound = (v6 ? "[" + host + "]" : host) + ":" + std::to_string(actual_port);
  return listener;
}

}  // namespace

Result<Listener> listenOn(const std::string& address, const std::string& what,
                          std::optional<mode_t> unix_mode) {
  Result<Listener> listener = address.starts_with("unix:")
                                  ? listenUnix(address.substr(5), address, what, unix_mode)
                                  : listenTcp(address, what);
  if (!listener)
    return listener;
  if (::listen(listener->fd.get(), kBacklog) != 0) {
    auto error = socketError(what, address, "listen");
    if (!listener->unix_path.empty())
      ::unlink(listener->unix_path.c_str());
    return error;
  }
  return listener;
}

}  // namespace pullagent::agent
