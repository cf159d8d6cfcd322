#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

namespace pullagent::agent {

// The daemon's counters, rendered in the Prometheus text exposition format (version 0.0.4).
// Thread-safe: pull workers record, the metrics server renders.
class Metrics {
 public:
  // result: "success", "failure" or "cancelled".
  void pullFinished(const std::string& result, double seconds);
  void phaseDuration(const std::string& phase, double seconds);
  void bytesDownloaded(int64_t bytes);
  void blobs(int downloaded, int present);
  void retryScheduled();
  void setPullsInFlight(int count);
  void setSites(int count);
  // 1 while the last scan of the sites directory succeeded, 0 while it fails.
  void setSitesDirectoryHealthy(bool healthy);
  void garbageCollected(int images, int blobs, int64_t bytes);

  std::string render() const;

 private:
  static constexpr std::array<double, 11> kBuckets{0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600};
  struct Histogram {
    std::array<uint64_t, kBuckets.size()> buckets{};
    uint64_t count = 0;
    double sum = 0;
    void observe(double value);
  };

  mutable std::mutex mutex_;
  std::map<std::string, uint64_t> pulls_;  // by result
  Histogram pull_seconds_;
  std::map<std::string, Histogram> phase_seconds_;
  uint64_t bytes_ = 0;
  uint64_t blobs_downloaded_ = 0;
  uint64_t blobs_present_ = 0;
  uint64_t retries_ = 0;
  int in_flight_ = 0;
  int sites_ = 0;
  bool sites_dir_healthy_ = true;
  uint64_t gc_images_ = 0;
  uint64_t gc_blobs_ = 0;
  uint64_t gc_bytes_ = 0;
};

}  // namespace pullagent::agent
