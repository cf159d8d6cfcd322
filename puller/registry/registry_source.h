#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "base/secret.h"
#include "puller/auth/authorizer.h"
#include "puller/http/http_client.h"

namespace pullagent::puller {

// One place a repository's content can be fetched from: a mirror (a pull-through cache, a
// peer-to-peer engine's node endpoint) or the origin registry. The registry client tries its
// sources in order, the origin last.
struct RegistrySource {
  std::string scheme = "https";
  std::string host;              // host[:port]
  std::string api_root = "/v2";  // override_path: the path exactly as configured
  HttpClient* http = nullptr;    // with the source's own TLS settings (CA, client certificate)
  // The origin's Authorizer carries the pull's credentials; a mirror's is anonymous (it may
  // still answer a token challenge of the mirror's own). Never shared between the two.
  Authorizer* authorizer = nullptr;
  // The Authorization configured for this mirror itself (a `header` in hosts.toml): sent
  // instead of what its Authorizer would send.
  std::optional<Secret> authorization;
  std::vector<HttpHeader> headers;  // hosts.toml `header`, sent with every request
  // The registry the content belongs to, as `?ns=` on every request (when the source is not
  // that registry itself): one mirror serves many registries (Spegel, Dragonfly, caches).
  std::string ns;
  bool pull = true;     // blobs and manifests by digest
  bool resolve = true;  // manifests by tag
  bool origin = false;

  // "mirror https://m:5000" or "origin https://r.io", for messages.
  std::string describe() const;
};

// Why a mirror was passed over for the next source; the label of the fallbacks metric.
std::string_view fallbackReason(const Error& error);
// Every reason fallbackReason gives (and "throttled" for a mirror still paused, "passed_over"
// for a mirror that stalled earlier in the same pull).
inline constexpr std::array<std::string_view, 10> kFallbackReasons{
    "not_found", "auth",        "digest",   "timeout", "tls",
    "throttled", "unavailable", "protocol", "other",   "passed_over"};

// What a pull fetched from where: requests and bytes per kind of source, the fallbacks from a
// mirror to the next source by reason, and the time requests waited for a throttled host.
// Thread-safe (the download pool's threads record).
class SourceTally {
 public:
  void request(bool origin) { (origin ? origin_requests_ : mirror_requests_) += 1; }
  void bytes(bool origin, int64_t count) { (origin ? origin_bytes_ : mirror_bytes_) += count; }
  void fallback(std::string_view reason);
  void throttled(std::chrono::milliseconds waited) { throttled_ms_ += waited.count(); }

  struct Totals {
    int64_t origin_requests = 0;
    int64_t mirror_requests = 0;
    int64_t origin_bytes = 0;
    int64_t mirror_bytes = 0;
    std::map<std::string, int64_t> fallbacks;  // by reason
    std::chrono::milliseconds throttled{0};
  };
  Totals totals() const;

 private:
  std::atomic<int64_t> origin_requests_{0};
  std::atomic<int64_t> mirror_requests_{0};
  std::atomic<int64_t> origin_bytes_{0};
  std::atomic<int64_t> mirror_bytes_{0};
  std::atomic<int64_t> throttled_ms_{0};
  mutable std::mutex mutex_;
  std::map<std::string, int64_t> fallbacks_;
};

}  // namespace pullagent::puller
