#pragma once

#include <chrono>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/host_resolver.h"
#include "resolver/dns_servers.h"

namespace pullagent::resolver {

struct AresOptions {
  std::vector<DnsServer> servers;  // primary first; the next ones only when it does not answer
  std::chrono::milliseconds timeout{2000};  // per try and server
  int tries = 2;
  size_t cache_entries = 1024;
};

// One name's answer with what led to it.
struct DnsAnswer {
  std::vector<std::string> addresses;
  std::vector<std::string> chain;  // the CNAME targets followed, in order
  int ttl = 0;
};

// Resolves names with c-ares against the given servers only: never /etc/hosts, resolv.conf or
// search domains, and never another resolver as a fallback (a VNet pull must not leak to public
// DNS). CNAME chains are followed, A and AAAA both asked; answers are cached for their TTL.
class AresResolver final : public HostResolver {
 public:
  static Result<std::unique_ptr<AresResolver>> create(AresOptions options, const Clock& clock);
  ~AresResolver() override;

  Result<std::vector<std::string>> resolve(const std::string& host, const Context& ctx) override;
  // The same question asked afresh (never from the cache), with the CNAME chain: what
  // `pullagent diagnose` shows.
  Result<DnsAnswer> lookup(const std::string& host, const Context& ctx);

 private:
  struct Impl;
  explicit AresResolver(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// True for addresses that are not private, loopback or link-local: under a VNet pull a
// registry resolving to one means the private DNS zone is probably not linked.
bool isPublicAddress(const std::string& address);

// The c-ares library in use, for --version.
std::string caresVersion();

}  // namespace pullagent::resolver
