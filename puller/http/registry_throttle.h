#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "base/clock.h"
#include "base/context.h"
#include "base/error.h"

namespace pullagent::puller {

// One registry host's "slow down", heard by every pull of the process: a 429 (or 503) with
// Retry-After pauses every request to that host until then, not just the retries of the pull
// that received it, so that twenty sites pulling from one throttled registry back off together
// instead of each hammering it on its own schedule. Optionally, a cap on the requests in flight
// to one host. Thread-safe; the service keeps one for all its sites.
class RegistryThrottle {
 public:
  explicit RegistryThrottle(const Clock& clock) : clock_(clock) {}

  // At most `max_in_flight` requests to `host` at once; 0 lifts the cap.
  void setLimit(const std::string& host, int max_in_flight);
  // The cap of every host without one of its own (0: none).
  void setDefaultLimit(int max_in_flight);

  // A request's slot: released when the object goes.
  class Permit {
   public:
    Permit() = default;
    Permit(Permit&& other) noexcept;
    Permit& operator=(Permit&& other) noexcept;
    Permit(const Permit&) = delete;
    Permit& operator=(const Permit&) = delete;
    ~Permit();

   private:
    friend class RegistryThrottle;
    Permit(RegistryThrottle* owner, std::string host) : owner_(owner), host_(std::move(host)) {}
    RegistryThrottle* owner_ = nullptr;
    std::string host_;
  };

  // Waits until `host` may be sent a request: no pause in force and a slot under its cap.
  // kCancelled / kTimeout when the context ends first.
  Result<Permit> admit(const std::string& host, const Context& ctx);

  // `host` asked for `delay` of quiet (Retry-After, already capped by the caller's policy):
  // every admit waits until then. A shorter pause never cuts a longer one short.
  void pause(const std::string& host, std::chrono::milliseconds delay);

  // Whether `host` asked for quiet that has not ended yet (a mirror in that state is passed
  // over instead of waited for).
  bool paused(const std::string& host) const;

  struct HostStats {
    int pauses = 0;                       // times the host asked for quiet
    std::chrono::milliseconds waited{0};  // summed over every admit that waited
    int in_flight = 0;
  };
  HostStats stats(const std::string& host) const;

 private:
  struct Host {
    std::chrono::steady_clock::time_point paused_until{};
    std::optional<int> limit;  // unset: default_limit_
    int in_flight = 0;
    HostStats stats;
  };
  void release(const std::string& host);

  const Clock& clock_;
  mutable std::mutex mutex_;
  std::condition_variable slot_freed_;
  std::map<std::string, Host> hosts_;
  int default_limit_ = 0;
};

}  // namespace pullagent::puller
