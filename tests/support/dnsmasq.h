#pragma once

#include <memory>
#include <string>
#include <vector>

#include "resolver/ares_resolver.h"
#include "tests/support/process.h"

namespace pullagent::testing {

// A UDP socket bound to 127.0.0.1 on a port the kernel picks (bound at once: no race); returns
// the fd and sets `port`. For the DNS servers a test plays itself.
int bindLoopbackUdp(int& port);

// A UDP socket that receives queries and never answers.
class SilentServer {
 public:
  SilentServer();
  ~SilentServer();
  int port() const { return port_; }

 private:
  int port_ = 0;  // before fd_: the constructor's bind sets it
  int fd_ = -1;
};

// dnsmasq on 127.0.0.1 and a free port, authoritative for azurecr.io and test, with the given
// extra options (--cname=..., --host-record=...), started by tests/support/dnsmasq.py, which
// picks the port as every server of the tests does (tests/support/ports.py). Stopped, and gone,
// with the object or stop().
class Dnsmasq {
 public:
  explicit Dnsmasq(const std::vector<std::string>& records);
  ~Dnsmasq();
  Dnsmasq(const Dnsmasq&) = delete;
  Dnsmasq& operator=(const Dnsmasq&) = delete;
  resolver::DnsServer server() const { return {"127.0.0.1", port_}; }
  void stop();
  static resolver::AresOptions options(std::vector<resolver::DnsServer> servers);

 private:
  int port_ = 0;
  std::unique_ptr<BackgroundProcess> process_;
};

}  // namespace pullagent::testing
