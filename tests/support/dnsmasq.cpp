#include "tests/support/dnsmasq.h"

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <stdexcept>

namespace pullagent::testing {

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

Dnsmasq::Dnsmasq(const std::vector<std::string>& records) {
  std::vector<std::string> argv{PULLAGENT_TEST_PYTHON, PULLAGENT_DNSMASQ_SCRIPT, "--"};
  argv.insert(argv.end(), records.begin(), records.end());
  process_ = std::make_unique<BackgroundProcess>(argv);
  // The launcher prints "READY <port>" once this dnsmasq answered a record only it has.
  auto ready = process_->waitForLineStartingWith("READY ", std::chrono::seconds(60));
  if (!ready)
    throw std::runtime_error("dnsmasq did not start (tests/support/dnsmasq.py said why above)");
  port_ = std::stoi(ready->substr(6));
}

Dnsmasq::~Dnsmasq() {
  stop();
}

void Dnsmasq::stop() {
  if (!process_)
    return;
  process_->kill(SIGTERM);  // the launcher stops dnsmasq and waits for it before it exits
  process_->wait();
  process_.reset();
}

resolver::AresOptions Dnsmasq::options(std::vector<resolver::DnsServer> servers) {
  resolver::AresOptions options;
  options.servers = std::move(servers);
  options.timeout = std::chrono::milliseconds(300);
  options.tries = 1;
  return options;
}

}  // namespace pullagent::testing
