#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "puller/lazy/lazy_host.h"
#include "puller/registry/registry_source.h"

namespace prometheus {
class Registry;
class Counter;
class Gauge;
template <typename T>
class Family;
class Histogram;
}  // namespace prometheus

namespace pullagent::agent {

// The daemon's metrics, kept in a prometheus-cpp registry and rendered in the Prometheus text
// exposition format (version 0.0.4). Names, labels and types are part of the interface
// (dashboards and alerts use them): see the README. Thread-safe: pull workers record, the
// metrics server renders.
class Metrics {
 public:
  Metrics();
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // result: "success", "failure" or "cancelled".
  void pullFinished(const std::string& result, double seconds);
  void phaseDuration(const std::string& phase, double seconds);
  void bytesDownloaded(int64_t bytes);
  void blobs(int downloaded, int present, int not_needed);
  void retryScheduled();
  void setPullsInFlight(int count);
  void setSites(int count);
  // 1 while the last scan of the sites directory succeeded, 0 while it fails.
  void setSitesDirectoryHealthy(bool healthy);
  void garbageCollected(int images, int blobs, int64_t bytes);
  // A publish over layer snapshots: how many it found made and how many it unpacked.
  void snapshots(int reused, int unpacked);
  // After gc: the layer snapshots kept and the bytes they hold on disk (each once, however
  // many images share it).
  void snapshotsOnDisk(int count, int64_t bytes);
  // Lazy pulling (docs/lazy.md): the host's totals since it started.
  void lazyPulling(const puller::LazyLayerHost::Totals& totals);
  void snapshotsCollected(int count);
  // A check of a published site's tag ended (refresh, poll, webhook, start):
  // "unchanged", "updated" or "failed".
  void tagChecked(const std::string& result);
  // One container's pull in a site's attempt ended: role "main" or "sidecar" (container names
  // are tenants' strings: not labels), result "ready", "unchanged" or "failed".
  void containerPulled(const std::string& role, const std::string& result);

  // Where a pull's requests and bytes went (mirrors, the origin), the fallbacks from its
  // mirrors by reason, and how long its requests waited for a throttled registry.
  void sources(const puller::SourceTally::Totals& totals);

  // The state dir's disk after each check, by kind: "used" and "available" of its filesystem
  // (df's), "state" (what the state dir holds), "evictable" (what eviction could free).
  void diskBytes(const std::string& kind, int64_t bytes);
  // Eviction under pressure freed this much, by reason: "unpacked-layer-blob", "unused-image".
  void evicted(const std::string& reason, int64_t bytes);
  // A pull refused before its first byte: it cannot fit even after eviction.
  void admissionRefused();
  // Signature verdicts since the last call, by result (accepted, logged, refused, error) and
  // check (none, unsigned, integrity, authenticity, …: a fixed set of the verifiers').
  void signatureVerifications(const std::string& result, const std::string& check, int64_t count);

  std::string render() const;

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& pulls_;
  prometheus::Family<prometheus::Histogram>& phase_seconds_;
  prometheus::Histogram& pull_seconds_;
  prometheus::Counter& bytes_;
  prometheus::Counter& blobs_downloaded_;
  prometheus::Counter& blobs_present_;
  prometheus::Counter& blobs_not_needed_;
  prometheus::Counter& retries_;
  prometheus::Gauge& in_flight_;
  prometheus::Gauge& sites_;
  prometheus::Gauge& sites_dir_healthy_;
  prometheus::Counter& gc_images_;
  prometheus::Counter& gc_blobs_;
  prometheus::Counter& gc_bytes_;
  prometheus::Family<prometheus::Counter>& tag_checks_;
  prometheus::Family<prometheus::Counter>& container_pulls_;
  prometheus::Counter& gc_snapshots_;
  prometheus::Counter& snapshots_reused_;
  prometheus::Counter& snapshots_unpacked_;
  prometheus::Gauge& snapshots_kept_;
  prometheus::Gauge& snapshot_bytes_;
  prometheus::Gauge& lazy_layers_;
  prometheus::Gauge& lazy_fetched_ratio_;
  prometheus::Family<prometheus::Counter>& lazy_bytes_;
  prometheus::Counter& lazy_reads_;
  prometheus::Counter& lazy_read_errors_;
  prometheus::Counter& lazy_files_pushed_;
  prometheus::Counter& lazy_promotions_;
  prometheus::Histogram& lazy_read_seconds_;
  std::mutex lazy_mutex_;
  puller::LazyLayerHost::Totals lazy_seen_;  // what lazyPulling() counted already
  prometheus::Counter& origin_requests_;
  prometheus::Counter& mirror_requests_;
  prometheus::Counter& origin_bytes_;
  prometheus::Counter& mirror_bytes_;
  prometheus::Family<prometheus::Counter>& fallbacks_;
  prometheus::Counter& throttled_seconds_;
  prometheus::Family<prometheus::Gauge>& disk_bytes_;
  prometheus::Family<prometheus::Counter>& evicted_bytes_;
  prometheus::Counter& admission_refused_;
  prometheus::Family<prometheus::Counter>& signature_verifications_;
};

}  // namespace pullagent::agent
