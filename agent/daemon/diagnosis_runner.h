#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <variant>

#include "agent/daemon/site_runner.h"
#include "base/clock.h"
#include "base/random.h"

namespace pullagent::agent {

// `pullagent diagnose SITE` asked of the running service (POST /v1/diagnose on the control
// socket): the diagnosis runs in the service, with its agent config, environment (the App
// Service identity endpoint and header), identities and resolver, so that it sees what the
// service's pulls see. It never disturbs them: each diagnosis has a thread of its own (never a
// pull slot, never the daemon's loop), at most kMaxRunning at once, and writes nothing. Finished
// reports are kept for reading back, the oldest forgotten first beyond kMaxKept.
class DiagnosisRunner {
 public:
  static constexpr size_t kMaxRunning = 4;
  static constexpr size_t kMaxKept = 16;

  DiagnosisRunner(Clock& clock, Random& random) : clock_(clock), random_(random) {}
  ~DiagnosisRunner() { stopAll(); }
  DiagnosisRunner(const DiagnosisRunner&) = delete;
  DiagnosisRunner& operator=(const DiagnosisRunner&) = delete;

  // The services of the agent config in force (each load and reload); a running diagnosis
  // keeps the ones it started with.
  void setServices(std::shared_ptr<DaemonServices> services);

  // Starts the diagnosis of `site` (<sitesDir>/<site>.json, read afresh): its id, or why not.
  enum class Refusal { kBusy, kStarting };
  std::variant<uint64_t, Refusal> start(const std::string& site);

  // Stops every running diagnosis and waits for it (the service is stopping).
  void stopAll();

  // {"done": false} while it runs, {"done": true, "report": <Diagnosis::toJson()>} after;
  // nullopt for an id it does not know (or has forgotten).
  std::optional<nlohmann::json> result(uint64_t id);

 private:
  struct Entry {
    uint64_t id = 0;
    bool done = false;
    nlohmann::json report;
    std::jthread thread;
  };
  void forgetOldest();  // called with mutex_ held

  Clock& clock_;
  Random& random_;
  std::mutex mutex_;
  std::shared_ptr<DaemonServices> services_;
  uint64_t next_id_ = 1;
  std::list<Entry> entries_;  // oldest first
};

}  // namespace pullagent::agent
