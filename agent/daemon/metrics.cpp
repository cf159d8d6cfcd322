#include "agent/daemon/metrics.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

namespace pullagent::agent {
namespace {

// Seconds, from a quick pull of a cached image to a slow multi-gigabyte one.
const prometheus::Histogram::BucketBoundaries& durationBuckets() {
  static const prometheus::Histogram::BucketBoundaries buckets{0.1, 0.5, 1,   2.5, 5,  10,
                                                               30,  60,  120, 300, 600};
  return buckets;
}

prometheus::Family<prometheus::Counter>& counter(prometheus::Registry& registry, const char* name,
                                                 const char* help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(registry);
}

prometheus::Family<prometheus::Gauge>& gauge(prometheus::Registry& registry, const char* name,
                                             const char* help) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(registry);
}

prometheus::Family<prometheus::Histogram>& histogram(prometheus::Registry& registry,
                                                     const char* name, const char* help) {
  return prometheus::BuildHistogram().Name(name).Help(help).Register(registry);
}

}  // namespace

// Every series that has a fixed label set exists from the start (at 0), so that a rate() over
// it has a baseline before the first event. A family registered again by name (with an empty
// help) is the same family: the registry hands back the one it has.
Metrics::Metrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      pulls_(counter(*registry_, "pullagent_pulls_total", "Site pulls that ended, by result.")),
      phase_seconds_(
          histogram(*registry_, "pullagent_pull_phase_duration_seconds",
                    "Duration of each completed phase of a site pull (identity, secrets, pull).")),
      pull_seconds_(histogram(*registry_, "pullagent_pull_duration_seconds",
                              "Duration of successful site pulls, from identity to publish.")
                        .Add({}, durationBuckets())),
      bytes_(counter(*registry_, "pullagent_downloaded_bytes_total",
                     "Blob bytes downloaded and verified (blobs already stored are not counted).")
                 .Add({})),
      blobs_downloaded_(
          counter(*registry_, "pullagent_blobs_total",
                  "Blobs a pull needed, by whether they were downloaded or already stored, and "
                  "those it did not need (the layer unpacked already).")
              .Add({{"source", "downloaded"}})),
      blobs_present_(counter(*registry_, "pullagent_blobs_total", "").Add({{"source", "store"}})),
      blobs_not_needed_(
          counter(*registry_, "pullagent_blobs_total", "").Add({{"source", "snapshot"}})),
      retries_(counter(*registry_, "pullagent_pull_retries_total",
                       "Failed site pulls scheduled to be tried again.")
                   .Add({})),
      in_flight_(gauge(*registry_, "pullagent_pulls_in_flight", "Site pulls running now.").Add({})),
      sites_(
          gauge(*registry_, "pullagent_sites", "Sites configured in the sites directory.").Add({})),
      sites_dir_healthy_(
          gauge(*registry_, "pullagent_sites_directory_healthy",
                "1 while the sites directory can be read; 0 while sites are kept as last seen.")
              .Add({})),
      gc_images_(counter(*registry_, "pullagent_gc_removed_total",
                         "What garbage collection removed: images, blobs and bytes.")
                     .Add({{"kind", "images"}})),
      gc_blobs_(counter(*registry_, "pullagent_gc_removed_total", "").Add({{"kind", "blobs"}})),
      gc_bytes_(counter(*registry_, "pullagent_gc_removed_total", "").Add({{"kind", "bytes"}})),
      tag_checks_(counter(*registry_, "pullagent_tag_checks_total",
                          "Checks of a published site's tag (refresh, poll, webhook, start), by "
                          "result: unchanged, updated (pulled and republished) or failed (the "
                          "published image kept).")),
      container_pulls_(counter(*registry_, "pullagent_container_pulls_total",
                               "Container pulls of site attempts, by role (main, sidecar: "
                               "sitecontainers and Compose services) and result (ready, "
                               "unchanged, failed).")),
      gc_snapshots_(
          counter(*registry_, "pullagent_gc_removed_total", "").Add({{"kind", "snapshots"}})),
      snapshots_reused_(counter(*registry_, "pullagent_layer_snapshots_total",
                                "Layer snapshots publishes needed, by whether they were there "
                                "already (shared with another image) or unpacked.")
                            .Add({{"result", "reused"}})),
      snapshots_unpacked_(
          counter(*registry_, "pullagent_layer_snapshots_total", "").Add({{"result", "unpacked"}})),
      snapshots_kept_(gauge(*registry_, "pullagent_layer_snapshots",
                            "Layer snapshots in the state dir after the last garbage collection.")
                          .Add({})),
      snapshot_bytes_(gauge(*registry_, "pullagent_layer_snapshot_bytes",
                            "Bytes the layer snapshots hold on disk after the last garbage "
                            "collection, each counted once however many images share it.")
                          .Add({})),
      lazy_layers_(gauge(*registry_, "pullagent_lazy_layers",
                         "eStargz layers read in place now (lazy pulling), not yet promoted.")
                       .Add({})),
      lazy_fetched_ratio_(gauge(*registry_, "pullagent_lazy_fetched_ratio",
                                "Of the layers read in place now, the share of their bytes "
                                "fetched (1 when none is).")
                              .Add({})),
      lazy_bytes_(counter(*registry_, "pullagent_lazy_bytes_total",
                          "Bytes of layers read in place, by how they came: on_demand (for "
                          "readers and the prefetch) or filled (the background fill and its "
                          "read-ahead).")),
      lazy_reads_(counter(*registry_, "pullagent_lazy_reads_total",
                          "Reads through the FUSE mounts of layers read in place.")
                      .Add({})),
      lazy_read_errors_(counter(*registry_, "pullagent_lazy_read_errors_total",
                                "Of those reads, the ones that failed (EIO: a chunk that could "
                                "not be fetched or did not verify).")
                            .Add({})),
      lazy_files_pushed_(counter(*registry_, "pullagent_lazy_files_pushed_total",
                                 "Small files of layers read in place put in the page cache "
                                 "after a listing showed them, before anyone read them.")
                             .Add({})),
      lazy_promotions_(counter(*registry_, "pullagent_lazy_promotions_total",
                               "Images switched from layers read in place to ordinary snapshots.")
                           .Add({})),
      lazy_read_seconds_(
          histogram(*registry_, "pullagent_lazy_read_seconds",
                    "How long reads through the FUSE mounts of layers read in place took, the "
                    "wait for their chunks (fetched on demand) included.")
              .Add({}, prometheus::Histogram::BucketBoundaries(
                           puller::estargz::LazyMount::kReadSecondsBounds.begin(),
                           puller::estargz::LazyMount::kReadSecondsBounds.end()))),
      origin_requests_(counter(*registry_, "pullagent_registry_requests_total",
                               "Requests pulls sent, by source: the registry itself (origin) or "
                               "a mirror (hosts.toml).")
                           .Add({{"source", "origin"}})),
      mirror_requests_(
          counter(*registry_, "pullagent_registry_requests_total", "").Add({{"source", "mirror"}})),
      origin_bytes_(counter(*registry_, "pullagent_registry_bytes_total",
                            "Manifest and blob bytes pulls received, by source.")
                        .Add({{"source", "origin"}})),
      mirror_bytes_(
          counter(*registry_, "pullagent_registry_bytes_total", "").Add({{"source", "mirror"}})),
      fallbacks_(counter(*registry_, "pullagent_mirror_fallbacks_total",
                         "Requests a mirror failed and the next source served, by reason.")),
      throttled_seconds_(counter(*registry_, "pullagent_registry_throttled_seconds_total",
                                 "Time requests waited for a registry that asked to slow down "
                                 "(429/503 with Retry-After) or for a slot under "
                                 "maxRequestsPerRegistry.")
                             .Add({})),
      disk_bytes_(gauge(*registry_, "pullagent_disk_bytes",
                        "The state dir's disk at the last check, by kind: used and available "
                        "(its filesystem, as df counts them), state (what the state dir holds), "
                        "evictable (what eviction could free).")),
      evicted_bytes_(counter(*registry_, "pullagent_disk_evicted_bytes_total",
                             "Bytes eviction freed above the high watermark, by reason: "
                             "unpacked-layer-blob, unused-image.")),
      admission_refused_(counter(*registry_, "pullagent_pull_admission_refused_total",
                                 "Pulls refused before their first byte: they could not fit "
                                 "even after eviction.")
                             .Add({})),
      signature_verifications_(counter(
          *registry_, "pullagent_signature_verifications_total",
          "Signature policy verdicts, by result (accepted; logged: a failed check the level does "
          "not enforce; refused; error: no verdict, the registry or a verifier did not answer) "
          "and check.")) {
  signature_verifications_.Add({{"result", "accepted"}, {"check", "none"}});
  for (const char* kind : {"used", "available", "state", "evictable"})
    disk_bytes_.Add({{"kind", kind}});
  for (const char* reason : {"unpacked-layer-blob", "unused-image"})
    evicted_bytes_.Add({{"reason", reason}});
  for (const auto reason : puller::kFallbackReasons)
    fallbacks_.Add({{"reason", std::string(reason)}});
  for (const char* result : {"unchanged", "updated", "failed"})
    tag_checks_.Add({{"result", result}});
  for (const char* result : {"success", "failure", "cancelled"})
    pulls_.Add({{"result", result}});
  for (const char* role : {"main", "sidecar"}) {
    for (const char* result : {"ready", "unchanged", "failed"})
      container_pulls_.Add({{"role", role}, {"result", result}});
  }
  sites_dir_healthy_.Set(1);
}

Metrics::~Metrics() = default;

void Metrics::pullFinished(const std::string& result, double seconds) {
  pulls_.Add({{"result", result}}).Increment();
  if (result == "success")
    pull_seconds_.Observe(seconds);
}

void Metrics::phaseDuration(const std::string& phase, double seconds) {
  phase_seconds_.Add({{"phase", phase}}, durationBuckets()).Observe(seconds);
}

void Metrics::bytesDownloaded(int64_t bytes) {
  bytes_.Increment(static_cast<double>(bytes));
}

void Metrics::blobs(int downloaded, int present, int not_needed) {
  blobs_downloaded_.Increment(downloaded);
  blobs_present_.Increment(present);
  blobs_not_needed_.Increment(not_needed);
}

void Metrics::sources(const puller::SourceTally::Totals& totals) {
  origin_requests_.Increment(static_cast<double>(totals.origin_requests));
  mirror_requests_.Increment(static_cast<double>(totals.mirror_requests));
  origin_bytes_.Increment(static_cast<double>(totals.origin_bytes));
  mirror_bytes_.Increment(static_cast<double>(totals.mirror_bytes));
  for (const auto& [reason, count] : totals.fallbacks)
    fallbacks_.Add({{"reason", reason}}).Increment(static_cast<double>(count));
  throttled_seconds_.Increment(std::chrono::duration<double>(totals.throttled).count());
}

void Metrics::retryScheduled() {
  retries_.Increment();
}

void Metrics::setPullsInFlight(int count) {
  in_flight_.Set(count);
}

void Metrics::setSites(int count) {
  sites_.Set(count);
}

void Metrics::setSitesDirectoryHealthy(bool healthy) {
  sites_dir_healthy_.Set(healthy ? 1 : 0);
}

void Metrics::snapshots(int reused, int unpacked) {
  snapshots_reused_.Increment(reused);
  snapshots_unpacked_.Increment(unpacked);
}

void Metrics::lazyPulling(const puller::LazyLayerHost::Totals& totals) {
  std::lock_guard lock(lazy_mutex_);
  lazy_layers_.Set(totals.layers);
  lazy_fetched_ratio_.Set(totals.bytes > 0 ? static_cast<double>(totals.bytes_held) /
                                                 static_cast<double>(totals.bytes)
                                           : 1.0);
  // Counters move by what is new since the last call (the totals only grow).
  auto add = [](prometheus::Counter& counter, int64_t now, int64_t seen) {
    if (now > seen)
      counter.Increment(static_cast<double>(now - seen));
  };
  add(lazy_bytes_.Add({{"kind", "on_demand"}}), totals.bytes_on_demand, lazy_seen_.bytes_on_demand);
  add(lazy_bytes_.Add({{"kind", "filled"}}), totals.bytes_filled, lazy_seen_.bytes_filled);
  add(lazy_reads_, totals.reads, lazy_seen_.reads);
  add(lazy_read_errors_, totals.read_errors, lazy_seen_.read_errors);
  add(lazy_files_pushed_, totals.files_pushed, lazy_seen_.files_pushed);
  add(lazy_promotions_, totals.promotions, lazy_seen_.promotions);
  std::vector<double> new_reads(totals.read_seconds.size());
  bool any = false;
  for (size_t i = 0; i < new_reads.size(); ++i) {
    const int64_t added = totals.read_seconds[i] - lazy_seen_.read_seconds[i];
    new_reads[i] = static_cast<double>(std::max<int64_t>(added, 0));
    any = any || added > 0;
  }
  if (any) {
    lazy_read_seconds_.ObserveMultiple(
        new_reads, std::max(0.0, totals.read_seconds_sum - lazy_seen_.read_seconds_sum));
  }
  lazy_seen_ = totals;
}

void Metrics::snapshotsOnDisk(int count, int64_t bytes) {
  snapshots_kept_.Set(count);
  snapshot_bytes_.Set(static_cast<double>(bytes));
}

void Metrics::snapshotsCollected(int count) {
  gc_snapshots_.Increment(count);
}

void Metrics::garbageCollected(int images, int blobs, int64_t bytes) {
  gc_images_.Increment(images);
  gc_blobs_.Increment(blobs);
  gc_bytes_.Increment(static_cast<double>(bytes));
}

void Metrics::tagChecked(const std::string& result) {
  tag_checks_.Add({{"result", result}}).Increment();
}

void Metrics::containerPulled(const std::string& role, const std::string& result) {
  container_pulls_.Add({{"role", role}, {"result", result}}).Increment();
}

std::string Metrics::render() const {
  return prometheus::TextSerializer().Serialize(registry_->Collect());
}

void Metrics::diskBytes(const std::string& kind, int64_t bytes) {
  disk_bytes_.Add({{"kind", kind}}).Set(static_cast<double>(bytes));
}

void Metrics::evicted(const std::string& reason, int64_t bytes) {
  evicted_bytes_.Add({{"reason", reason}}).Increment(static_cast<double>(bytes));
}

void Metrics::admissionRefused() {
  admission_refused_.Increment();
}

void Metrics::signatureVerifications(const std::string& result, const std::string& check,
                                     int64_t count) {
  signature_verifications_.Add({{"result", result}, {"check", check}})
      .Increment(static_cast<double>(count));
}

}  // namespace pullagent::agent
