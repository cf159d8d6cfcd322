#include "tests/support/dnsmasq.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <stdexcept>
#include <thread>

#include "base/clock.h"

namespace pullagent::testing {
namespace {

int freeUdpPort() {
  int port = 0;
  ::close(bindLoopbackUdp(port));
  return port;
}

}  // namespace

int bindLoopbackUdp(int& port) {
  int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0)
    throw std::runtime_error("cannot bind a loopback UDP socket");
  socklen_t length = sizeof address;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  port = ntohs(address.sin_port);
  return fd;
}

SilentServer::SilentServer() : fd_(bindLoopbackUdp(port_)) {}

SilentServer::~SilentServer() {
  ::close(fd_);
}

Dnsmasq::Dnsmasq(std::vector<std::string> records) : port_(freeUdpPort()) {
  std::vector<std::string> argv{"/usr/sbin/dnsmasq",
                                "--keep-in-foreground",
                                "--no-resolv",
                                "--no-hosts",
                                "--conf-file=/dev/null",
                                "--bind-interfaces",
                                "--listen-address=127.0.0.1",
                                "--pid-file=",
                                "--port=" + std::to_string(port_),
                                "--local=/azurecr.io/",
                                "--local=/test/"};
  argv.insert(argv.end(), records.begin(), records.end());
  process_ = std::make_unique<BackgroundProcess>(argv);
  // Ready when a query gets an answer (NXDOMAIN is an answer).
  for (int i = 0; i < 100; ++i) {
    SystemClock clock;
    auto resolver = resolver::AresResolver::create(options({server()}), clock);
    Context ctx{&clock, {}, std::nullopt};
    auto result = (*resolver)->resolve("ready.test", ctx);
    if (result.ok() || result.error().code == ErrorCode::kNotFound)
      return;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  throw std::runtime_error("dnsmasq did not start");
}

resolver::AresOptions Dnsmasq::options(std::vector<resolver::DnsServer> servers) {
  resolver::AresOptions options;
  options.servers = std::move(servers);
  options.timeout = std::chrono::milliseconds(300);
  options.tries = 1;
  return options;
}

}  // namespace pullagent::testing
