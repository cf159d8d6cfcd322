// The service's HTTP server (libmicrohttpd) and the metrics endpoint on it: routing, limits,
// and slow clients that must not cost other clients an answer, or the process threads.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "agent/daemon/http_server.h"
#include "agent/daemon/metrics_server.h"
#include "base/unique_fd.h"
#include "tests/support/temp_dir.h"

namespace pullagent::agent {
namespace {

using testing::TempDir;

uint16_t portOf(const std::string& bound) {
  return static_cast<uint16_t>(std::stoi(bound.substr(bound.rfind(':') + 1)));
}

// A connected client socket whose reads give up after 5 s (so a test fails instead of hanging).
UniqueFd connectTo(uint16_t port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  ::inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
  timeval timeout{5, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0)
    return UniqueFd();
  return fd;
}

void sendText(int fd, const std::string& text) {
  ASSERT_EQ(::send(fd, text.data(), text.size(), MSG_NOSIGNAL), static_cast<ssize_t>(text.size()));
}

// Everything the server sends until it closes the connection (or the read timeout passes).
std::string readAll(int fd) {
  std::string response;
  char buffer[4096];
  ssize_t n = 0;
  while ((n = ::read(fd, buffer, sizeof buffer)) > 0)
    response.append(buffer, static_cast<size_t>(n));
  return response;
}

std::string roundTrip(uint16_t port, const std::string& request) {
  UniqueFd fd = connectTo(port);
  if (!fd.valid())
    return {};
  sendText(fd.get(), request);
  return readAll(fd.get());
}

std::string get(uint16_t port, const std::string& path) {
  return roundTrip(port, "GET " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
}

size_t entriesIn(const char* dir) {
  size_t count = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(dir))
    ++count;
  return count;
}

TEST(MetricsServer, ServesMetricsOverTcpAndRefusesTheRest) {
  auto server = MetricsServer::start("127.0.0.1:0", [] { return std::string("up 1\n"); });
  ASSERT_TRUE(server.ok()) << server.error().message;
  const uint16_t port = portOf((*server)->address());
  ASSERT_GT(port, 0);
  auto ok = get(port, "/metrics");
  EXPECT_EQ(ok.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << ok;
  EXPECT_NE(ok.find("Content-Type: text/plain; version=0.0.4"), std::string::npos) << ok;
  EXPECT_NE(ok.find("\r\n\r\nup 1\n"), std::string::npos) << ok;
  EXPECT_EQ(get(port, "/metrics?x=1").rfind("HTTP/1.1 200", 0), 0u);
  EXPECT_EQ(get(port, "/").rfind("HTTP/1.1 404", 0), 0u);
  EXPECT_EQ(roundTrip(port,
                      "POST /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                      "Content-Length: 0\r\n\r\n")
                .rfind("HTTP/1.1 405", 0),
            0u);

  for (const char* bad :
       {"localhost:9464", "127.0.0.1", "127.0.0.1:99999", "unix:", "unix:relative.sock"}) {
    auto refused = MetricsServer::start(bad, [] { return std::string(); });
    EXPECT_FALSE(refused.ok()) << bad;
  }
}

// The misbehaving scraper of issue 16: hundreds of connections that send nothing, or half a
// request line and then a byte now and then. The idle timeout is a minute here, so an answer
// within the client's 5 s read timeout means nobody waited for them to time out; and the
// server's threads do not grow with them.
TEST(HttpServer, IdleAndTricklingClientsNeitherDelayOthersNorCostThreads) {
  HttpServerLimits limits;
  limits.idle_timeout = std::chrono::seconds(60);
  auto server = MetricsServer::start(
      "127.0.0.1:0", [] { return std::string("up 1\n"); }, limits);
  ASSERT_TRUE(server.ok()) << server.error().message;
  const uint16_t port = portOf((*server)->address());
  ASSERT_EQ(get(port, "/metrics").rfind("HTTP/1.1 200", 0), 0u);
  const size_t threads_before = entriesIn("/proc/self/task");
  const size_t fds_before = entriesIn("/proc/self/fd");

  constexpr int kIdle = 300;
  constexpr int kTrickling = 100;
  std::vector<UniqueFd> clients;
  for (int i = 0; i < kIdle + kTrickling; ++i) {
    clients.push_back(connectTo(port));
    ASSERT_TRUE(clients.back().valid()) << "connection " << i;
    if (i >= kIdle)
      sendText(clients.back().get(), "GET /metr");
  }
  for (int round = 0; round < 3; ++round) {
    for (int i = kIdle; i < kIdle + kTrickling; ++i)
      sendText(clients[static_cast<size_t>(i)].get(), "i");
    auto answer = get(port, "/metrics");
    EXPECT_EQ(answer.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << "round " << round << ": " << answer;
  }
  EXPECT_EQ(entriesIn("/proc/self/task"), threads_before);
  // Each connection is two descriptors in this process (our end and the server's), nothing more.
  EXPECT_LE(entriesIn("/proc/self/fd"), fds_before + 2 * clients.size() + 4);
}

TEST(HttpServer, ServesNoMoreConnectionsThanTheCapAtOnce) {
  HttpServerLimits limits;
  limits.connections = 4;
  limits.threads = 1;
  auto server = HttpServer::start(
      "127.0.0.1:0", "test endpoint",
      [](const ServerRequest&) {
        return ServerResponse{200, "text/plain", "ok\n"};
      },
      limits);
  ASSERT_TRUE(server.ok()) << server.error().message;
  const uint16_t port = portOf((*server)->address());
  std::vector<UniqueFd> held;
  for (int i = 0; i < 4; ++i) {
    // A keep-alive request answered: the server holds this connection open now.
    held.push_back(connectTo(port));
    sendText(held.back().get(), "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    char buffer[256];
    ASSERT_GT(::read(held.back().get(), buffer, sizeof buffer), 0) << "connection " << i;
  }
  // The fifth waits in the listen backlog, unanswered, while four are open...
  UniqueFd extra = connectTo(port);
  ASSERT_TRUE(extra.valid());
  sendText(extra.get(), "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  timeval short_wait{1, 0};
  ::setsockopt(extra.get(), SOL_SOCKET, SO_RCVTIMEO, &short_wait, sizeof short_wait);
  char byte = 0;
  EXPECT_EQ(::read(extra.get(), &byte, 1), -1);
  // ...and is served as soon as one of them goes.
  timeval long_wait{5, 0};
  ::setsockopt(extra.get(), SOL_SOCKET, SO_RCVTIMEO, &long_wait, sizeof long_wait);
  held.pop_back();
  EXPECT_EQ(readAll(extra.get()).rfind("HTTP/1.1 200", 0), 0u);
}

TEST(HttpServer, HandsOverTheRequestAndRefusesOversizedOnes) {
  HttpServerLimits limits;
  limits.header_bytes = 8 * 1024;
  limits.body_bytes = 1024;
  auto server = HttpServer::start(
      "127.0.0.1:0", "test endpoint",
      [](const ServerRequest& request) {
        return ServerResponse{201, "text/plain",
                              request.method + " " + request.path + " " +
                                  request.headers.at("x-token") + " " + request.body +
                                  " a=" + (request.query.count("a") ? request.query.at("a") : "-")};
      },
      limits);
  ASSERT_TRUE(server.ok()) << server.error().message;
  const uint16_t port = portOf((*server)->address());
  auto echoed =
      roundTrip(port,
                "POST /hook?a=b HTTP/1.1\r\nHost: x\r\nX-Token: t1\r\nConnection: close\r\n"
                "Content-Length: 5\r\n\r\nhello");
  EXPECT_EQ(echoed.rfind("HTTP/1.1 201", 0), 0u) << echoed;
  EXPECT_NE(echoed.find("\r\n\r\nPOST /hook t1 hello a=b"), std::string::npos) << echoed;

  auto big_body = roundTrip(port,
                            "POST /hook HTTP/1.1\r\nHost: x\r\nX-Token: t\r\nConnection: close\r\n"
                            "Content-Length: 100000\r\n\r\n");
  EXPECT_EQ(big_body.rfind("HTTP/1.1 413", 0), 0u) << big_body;
  auto big_header =
      roundTrip(port, "GET / HTTP/1.1\r\nHost: x\r\nX-Token: " + std::string(20000, 'a') +
                          "\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(big_header.rfind("HTTP/1.1 431", 0), 0u) << big_header.substr(0, 200);
}

TEST(HttpServer, UnixSocketTakesTheModeAskedForAndIsRemovedAtStop) {
  TempDir dir;
  const std::string path = (dir / "control.sock").string();
  {
    auto server = HttpServer::start(
        "unix:" + path, "control socket",
        [](const ServerRequest&) {
          return ServerResponse{200, "text/plain", "ok\n"};
        },
        {}, 0600);
    ASSERT_TRUE(server.ok()) << server.error().message;
    struct stat info {};
    ASSERT_EQ(::lstat(path.c_str(), &info), 0);
    EXPECT_TRUE(S_ISSOCK(info.st_mode));
    EXPECT_EQ(info.st_mode & 0777, 0600u);

    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
    ASSERT_EQ(::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address), 0);
    sendText(fd.get(), "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    EXPECT_EQ(readAll(fd.get()).rfind("HTTP/1.1 200", 0), 0u);
  }
  EXPECT_FALSE(std::filesystem::exists(path));
}

}  // namespace
}  // namespace pullagent::agent
