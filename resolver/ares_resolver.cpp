#include "resolver/ares_resolver.h"

#include <ares.h>
#include <arpa/inet.h>
#include <poll.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <cstring>

namespace pullagent::resolver {
namespace {

std::once_flag library_init;

std::string statusText(int status) {
  switch (status) {
    case ARES_ENOTFOUND:
      return "NXDOMAIN (no such name)";
    case ARES_ENODATA:
      return "no A or AAAA record";
    case ARES_ESERVFAIL:
      return "SERVFAIL";
    case ARES_EREFUSED:
      return "REFUSED";
    case ARES_ETIMEOUT:
      return "no answer (timeout)";
    case ARES_ECONNREFUSED:
      // c-ares 1.18 ends a query whose servers all answered SERVFAIL or REFUSED, or refused the
      // connection, with this one code: say all three.
      return "no usable answer (SERVFAIL, REFUSED or connection refused)";
    default:
      return ares_strerror(status);
  }
}

ErrorCode codeFor(int status) {
  switch (status) {
    case ARES_ENOTFOUND:
    case ARES_ENODATA:
      return ErrorCode::kNotFound;
    case ARES_ETIMEOUT:
      return ErrorCode::kTimeout;
    default:
      return ErrorCode::kUnavailable;
  }
}

struct Lookup {
  bool done = false;
  int status = ARES_SUCCESS;
  std::vector<std::string> addresses;
  std::vector<std::string> chain;  // CNAMEs followed
  int ttl = 0;
};

extern "C" void onAddrinfo(void* arg, int status, int, struct ares_addrinfo* result) noexcept {
  auto* lookup = static_cast<Lookup*>(arg);
  lookup->done = true;
  lookup->status = status;
  if (status != ARES_SUCCESS || result == nullptr) {
    if (result != nullptr)
      ares_freeaddrinfo(result);
    return;
  }
  int ttl = INT32_MAX;
  for (auto* cname = result->cnames; cname != nullptr; cname = cname->next) {
    lookup->chain.push_back(cname->name ? cname->name : "");
    ttl = std::min(ttl, cname->ttl);
  }
  for (auto* node = result->nodes; node != nullptr; node = node->ai_next) {
    std::array<char, INET6_ADDRSTRLEN> text{};
    const void* raw =
        node->ai_family == AF_INET
            ? static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(node->ai_addr)->sin_addr)
            : static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(node->ai_addr)->sin6_addr);
    if (::inet_ntop(node->ai_family, raw, text.data(), text.size()) == nullptr)
      continue;
    std::string address(text.data());
    if (std::find(lookup->addresses.begin(), lookup->addresses.end(), address) ==
        lookup->addresses.end()) {
      lookup->addresses.push_back(address);
    }
    ttl = std::min(ttl, node->ai_ttl);
  }
  lookup->ttl = ttl == INT32_MAX ? 0 : ttl;
  if (lookup->addresses.empty())
    lookup->status = ARES_ENODATA;
  ares_freeaddrinfo(result);
}

}  // namespace

bool isPublicAddress(const std::string& address) {
  in_addr v4{};
  if (::inet_pton(AF_INET, address.c_str(), &v4) == 1) {
    uint32_t ip = ntohl(v4.s_addr);
    auto in = [&](uint32_t net, int bits) { return (ip >> (32 - bits)) == (net >> (32 - bits)); };
    return !(in(0x0A000000, 8) || in(0xAC100000, 12) || in(0xC0A80000, 16) || in(0x7F000000, 8) ||
             in(0xA9FE0000, 16) || in(0x64400000, 10));
  }
  in6_addr v6{};
  if (::inet_pton(AF_INET6, address.c_str(), &v6) == 1) {
    const bool loopback = IN6_IS_ADDR_LOOPBACK(&v6);
    const bool unique_local = (v6.s6_addr[0] & 0xfe) == 0xfc;
    const bool link_local = IN6_IS_ADDR_LINKLOCAL(&v6);
    return !(loopback || unique_local || link_local);
  }
  return false;
}

struct AresResolver::Impl {
  AresOptions options;
  const Clock* clock = nullptr;
  ares_channel channel = nullptr;
  std::string servers_text;
  std::mutex mutex;  // one lookup at a time on the channel; lookups are rare and cached
  struct Cached {
    std::vector<std::string> addresses;
    std::chrono::steady_clock::time_point expires;
  };
  std::map<std::string, Cached> cache;
  std::list<std::string> order;  // insertion order, for bounding the cache

  ~Impl() {
    if (channel != nullptr)
      ares_destroy(channel);
  }

  // One uncached lookup; the caller holds `mutex`.
  Result<DnsAnswer> query(const std::string& host, const Context& ctx) {
    Lookup lookup;
    ares_addrinfo_hints hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_flags = ARES_AI_CANONNAME | ARES_AI_NOSORT;
    ares_getaddrinfo(channel, host.c_str(), nullptr, &hints, &onAddrinfo, &lookup);
    if (auto status = wait(lookup, ctx); !status)
      return status.error().context("resolve " + host + " via VNet DNS " + servers_text);
    if (lookup.status != ARES_SUCCESS) {
      return makeError(codeFor(lookup.status),
                       "resolve " + host + " via VNet DNS " + servers_text + ": " +
                           statusText(lookup.status) +
                           "; no other resolver is asked for a VNet pull",
                       lookup.status);
    }
    return DnsAnswer{std::move(lookup.addresses), std::move(lookup.chain), lookup.ttl};
  }

  Status wait(Lookup& lookup, const Context& ctx) {
    while (!lookup.done) {
      if (auto status = ctx.check(); !status) {
        ares_cancel(channel);  // runs the callback with ARES_ECANCELLED
        return status;
      }
      std::array<ares_socket_t, ARES_GETSOCK_MAXNUM> sockets{};
      int mask = ares_getsock(channel, sockets.data(), ARES_GETSOCK_MAXNUM);
      std::vector<pollfd> fds;
      for (int i = 0; i < ARES_GETSOCK_MAXNUM; ++i) {
        short events = 0;
        if (ARES_GETSOCK_READABLE(mask, i))
          events |= POLLIN;
        if (ARES_GETSOCK_WRITABLE(mask, i))
          events |= POLLOUT;
        if (events != 0)
          fds.push_back(pollfd{sockets[static_cast<size_t>(i)], events, 0});
      }
      timeval max{0, 100000};  // wake up to check the stop token
      timeval next{};
      timeval* wait_for = ares_timeout(channel, &max, &next);
      int ms = static_cast<int>(wait_for->tv_sec * 1000 + wait_for->tv_usec / 1000);
      int ready = ::poll(fds.data(), fds.size(), ms);
      if (ready <= 0) {
        ares_process_fd(channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);  // timeouts
        continue;
      }
      for (const auto& fd : fds) {
        ares_process_fd(channel,
                        (fd.revents & (POLLIN | POLLERR | POLLHUP)) ? fd.fd : ARES_SOCKET_BAD,
                        (fd.revents & POLLOUT) ? fd.fd : ARES_SOCKET_BAD);
      }
    }
    return {};
  }
};

Result<std::unique_ptr<AresResolver>> AresResolver::create(AresOptions options,
                                                           const Clock& clock) {
  if (options.servers.empty())
    return makeError(ErrorCode::kInvalidArgument, "VNet DNS needs at least one server");
  std::call_once(library_init, [] { ares_library_init(ARES_LIB_INIT_ALL); });
  auto impl = std::make_unique<Impl>();
  impl->options = std::move(options);
  impl->clock = &clock;
  ares_options settings{};
  // DNS only ("b"): no hosts file; no search domains; our own servers replace resolv.conf's.
  char lookups[] = "b";
  settings.lookups = lookups;
  settings.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES;
  settings.timeout = static_cast<int>(impl->options.timeout.count());
  settings.tries = impl->options.tries;
  settings.ndomains = 0;
  settings.domains = nullptr;
  int mask =
      ARES_OPT_LOOKUPS | ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_DOMAINS;
  int rc = ares_init_options(&impl->channel, &settings, mask);
  if (rc != ARES_SUCCESS)
    return makeError(ErrorCode::kInternal, std::string("c-ares init: ") + ares_strerror(rc), rc);
  for (const auto& server : impl->options.servers)
    impl->servers_text += (impl->servers_text.empty() ? "" : ",") + server.str();
  // ares_set_servers_ports_csv honours the ports (ares_set_servers_csv ignores them in 1.18).
  rc = ares_set_servers_ports_csv(impl->channel, impl->servers_text.c_str());
  if (rc != ARES_SUCCESS) {
    return makeError(ErrorCode::kInvalidArgument,
                     "DNS servers " + impl->servers_text + ": " + ares_strerror(rc), rc);
  }
  return std::unique_ptr<AresResolver>(new AresResolver(std::move(impl)));
}

AresResolver::AresResolver(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
AresResolver::~AresResolver() = default;

Result<DnsAnswer> AresResolver::lookup(const std::string& host, const Context& ctx) {
  std::lock_guard lock(impl_->mutex);
  return impl_->query(host, ctx);
}

Result<std::vector<std::string>> AresResolver::resolve(const std::string& host,
                                                       const Context& ctx) {
  std::lock_guard lock(impl_->mutex);
  const auto now = impl_->clock->now();
  if (auto it = impl_->cache.find(host); it != impl_->cache.end()) {
    if (now < it->second.expires)
      return it->second.addresses;
    impl_->cache.erase(it);
    impl_->order.remove(host);
  }
  ASSIGN_OR_RETURN(auto answer, impl_->query(host, ctx));
  std::string chain;
  for (const auto& name : answer.chain)
    chain += " -> " + name;
  spdlog::debug("VNet DNS: {}{} -> {} (ttl {} s)", host, chain, answer.addresses.front(),
                answer.ttl);
  if (std::all_of(answer.addresses.begin(), answer.addresses.end(), isPublicAddress)) {
    spdlog::warn(
        "{} resolves to the public address {} through the VNet DNS: private endpoint DNS "
        "zone not linked to the VNet?",
        host, answer.addresses.front());
  }
  if (answer.ttl > 0 && impl_->options.cache_entries > 0) {
    if (impl_->cache.size() >= impl_->options.cache_entries) {
      impl_->cache.erase(impl_->order.front());
      impl_->order.pop_front();
    }
    impl_->cache[host] = Impl::Cached{answer.addresses, now + std::chrono::seconds(answer.ttl)};
    impl_->order.push_back(host);
  }
  return std::move(answer.addresses);
}

std::string caresVersion() {
  return ares_version(nullptr);
}

}  // namespace pullagent::resolver
