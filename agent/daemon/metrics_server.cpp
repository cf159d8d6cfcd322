#include "agent/daemon/metrics_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

namespace pullagent::agent {
namespace {

constexpr size_t kMaxRequest = 8192;

Error socketError(const std::string& what, const std::string& address) {
  return makeError(ErrorCode::kInvalidArgument,
                   "metrics address " + address + ": " + what + ": " + std::strerror(errno), errno);
}

Result<UniqueFd> listenUnix(const std::string& path, const std::string& address) {
  sockaddr_un addr{};
  if (path.empty() || path.size() >= sizeof addr.sun_path)
    return makeError(ErrorCode::kInvalidArgument, "metrics address " + address + ": bad path");
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid())
    return socketError("socket", address);
  // A socket left by an earlier run is replaced; anything else at the path is not ours.
  struct stat info {};
  if (::lstat(path.c_str(), &info) == 0 && S_ISSOCK(info.st_mode))
    ::unlink(path.c_str());
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0)
    return socketError("bind", address);
  return fd;
}

Result<UniqueFd> listenTcp(const std::string& address, std::string& bound) {
  auto colon = address.rfind(':');
  if (colon == std::string::npos)
    return makeError(ErrorCode::kInvalidArgument,
                     "metrics address " + address + ": expected host:port or unix:/path");
  std::string host = address.substr(0, colon);
  const std::string port_text = address.substr(colon + 1);
  int port = -1;
  auto [end, error] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (error != std::errc() || end != port_text.data() + port_text.size() || port < 0 ||
      port > 65535) {
    return makeError(ErrorCode::kInvalidArgument, "metrics address " + address + ": bad port");
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
      return makeError(ErrorCode::kInvalidArgument, "metrics address " + address + ": bad IPv6");
    length = sizeof(sockaddr_in6);
  } else {
    auto* addr = reinterpret_cast<sockaddr_in*>(&storage);
    addr->sin_family = AF_INET;
    addr->sin_port = htons(static_cast<uint16_t>(port));
    if (::inet_pton(AF_INET, host.c_str(), &addr->sin_addr) != 1) {
      return makeError(ErrorCode::kInvalidArgument,
                       "metrics address " + address + ": expected an IP address, not a name");
    }
    length = sizeof(sockaddr_in);
  }
  UniqueFd fd(::socket(storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid())
    return socketError("socket", address);
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&storage), length) != 0)
    return socketError("bind", address);
  sockaddr_storage actual{};
  socklen_t actual_length = sizeof actual;
  ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&actual), &actual_length);
  const uint16_t actual_port = ntohs(v6 ? reinterpret_cast<sockaddr_in6*>(&actual)->sin6_port
                                        : reinterpret_cast<sockaddr_in*>(&actual)->sin_port);
  bound = (v6 ? "[" + host + "]" : host) + ":" + std::to_string(actual_port);
  return fd;
}

void sendAll(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
    if (n <= 0)
      return;
    done += static_cast<size_t>(n);
  }
}

}  // namespace

Result<std::unique_ptr<MetricsServer>> MetricsServer::start(const std::string& address,
                                                            Render render) {
  std::string bound = address;
  std::string unix_path;
  Result<UniqueFd> fd = UniqueFd();
  if (address.starts_with("unix:")) {
    unix_path = address.substr(5);
    fd = listenUnix(unix_path, address);
    bound = unix_path;
  } else {
    fd = listenTcp(address, bound);
  }
  if (!fd)
    return fd.error();
  if (::listen(fd->get(), 16) != 0)
    return socketError("listen", address);
  std::unique_ptr<MetricsServer> server(
      new MetricsServer(std::move(fd.value()), bound, std::move(render)));
  server->unix_path_ = unix_path;
  server->thread_ = std::jthread([raw = server.get()](std::stop_token stop) { raw->serve(stop); });
  return server;
}

MetricsServer::MetricsServer(UniqueFd listener, std::string bound, Render render)
    : listener_(std::move(listener)),
      wake_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)),
      bound_(std::move(bound)),
      render_(std::move(render)) {}

MetricsServer::~MetricsServer() {
  thread_.request_stop();
  uint64_t one = 1;
  if (::write(wake_.get(), &one, sizeof one) < 0) {
    // The eventfd cannot be full here; the thread also polls with a timeout.
  }
  if (thread_.joinable())
    thread_.join();
  if (!unix_path_.empty())
    ::unlink(unix_path_.c_str());
}

void MetricsServer::serve(std::stop_token stop) {
  while (!stop.stop_requested()) {
    pollfd fds[2] = {{listener_.get(), POLLIN, 0}, {wake_.get(), POLLIN, 0}};
    if (::poll(fds, 2, 1000) <= 0 || (fds[0].revents & POLLIN) == 0)
      continue;
    UniqueFd client(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (client.valid())
      answer(client.get());
  }
}

void MetricsServer::answer(int client) {
  // One client at a time on this thread: a client that sends nothing is dropped after 2 s.
  timeval timeout{2, 0};
  ::setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  ::setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  std::string request;
  char buffer[1024];
  while (request.find("\r\n\r\n") == std::string::npos && request.size() < kMaxRequest) {
    ssize_t n = ::recv(client, buffer, sizeof buffer, 0);
    if (n <= 0)
      return;
    request.append(buffer, static_cast<size_t>(n));
  }
  const std::string line = request.substr(0, request.find("\r\n"));
  std::string status = "200 OK";
  std::string body;
  std::string type = "text/plain; version=0.0.4; charset=utf-8";
  if (!line.starts_with("GET ")) {
    status = "405 Method Not Allowed";
    body = "only GET\n";
    type = "text/plain";
  } else if (line.starts_with("GET /metrics ") || line.starts_with("GET /metrics?")) {
    body = render_();
  } else {
    status = "404 Not Found";
    body = "metrics are at /metrics\n";
    type = "text/plain";
  }
  sendAll(client, "HTTP/1.1 " + status + "\r\nContent-Type: " + type + "\r\nContent-Length: " +
                      std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body);
}

}  // namespace pullagent::agent
