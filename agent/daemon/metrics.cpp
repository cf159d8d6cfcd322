#include "agent/daemon/metrics.h"

#include <fmt/format.h>

namespace pullagent::agent {
namespace {

void header(std::string& out, const char* name, const char* type, const char* help) {
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

}  // namespace

void Metrics::Histogram::observe(double value) {
  for (size_t i = 0; i < kBuckets.size(); ++i) {
    if (value <= kBuckets[i])
      ++buckets[i];
  }
  ++count;
  sum += value;
}

void Metrics::pullFinished(const std::string& result, double seconds) {
  std::lock_guard lock(mutex_);
  ++pulls_[result];
  if (result == "success")
    pull_seconds_.observe(seconds);
}

void Metrics::phaseDuration(const std::string& phase, double seconds) {
  std::lock_guard lock(mutex_);
  phase_seconds_[phase].observe(seconds);
}

void Metrics::bytesDownloaded(int64_t bytes) {
  std::lock_guard lock(mutex_);
  bytes_ += static_cast<uint64_t>(bytes);
}

void Metrics::blobs(int downloaded, int present) {
  std::lock_guard lock(mutex_);
  blobs_downloaded_ += static_cast<uint64_t>(downloaded);
  blobs_present_ += static_cast<uint64_t>(present);
}

void Metrics::retryScheduled() {
  std::lock_guard lock(mutex_);
  ++retries_;
}

void Metrics::setPullsInFlight(int count) {
  std::lock_guard lock(mutex_);
  in_flight_ = count;
}

void Metrics::setSites(int count) {
  std::lock_guard lock(mutex_);
  sites_ = count;
}

void Metrics::setSitesDirectoryHealthy(bool healthy) {
  std::lock_guard lock(mutex_);
  sites_dir_healthy_ = healthy;
}

void Metrics::garbageCollected(int images, int blobs, int64_t bytes) {
  std::lock_guard lock(mutex_);
  gc_images_ += static_cast<uint64_t>(images);
  gc_blobs_ += static_cast<uint64_t>(blobs);
  gc_bytes_ += static_cast<uint64_t>(bytes);
}

std::string Metrics::render() const {
  std::lock_guard lock(mutex_);
  std::string out;
  header(out, "pullagent_pulls_total", "counter", "Site pulls that ended, by result.");
  for (const char* result : {"success", "failure", "cancelled"}) {
    auto found = pulls_.find(result);
    out += fmt::format("pullagent_pulls_total{{result=\"{}\"}} {}\n", result,
                       found == pulls_.end() ? 0 : found->second);
  }
  auto histogram = [&out](const std::string& name, const std::string& labels, const Histogram& h) {
    const std::string sep = labels.empty() ? "" : ",";
    for (size_t i = 0; i < kBuckets.size(); ++i) {
      out += fmt::format("{}_bucket{{{}{}le=\"{}\"}} {}\n", name, labels, sep, kBuckets[i],
                         h.buckets[i]);
    }
    out += fmt::format("{}_bucket{{{}{}le=\"+Inf\"}} {}\n", name, labels, sep, h.count);
    const std::string braces = labels.empty() ? "" : "{" + labels + "}";
    out += fmt::format("{}_sum{} {}\n{}_count{} {}\n", name, braces, h.sum, name, braces, h.count);
  };
  header(out, "pullagent_pull_duration_seconds", "histogram",
         "Duration of successful site pulls, from identity to publish.");
  histogram("pullagent_pull_duration_seconds", "", pull_seconds_);
  header(out, "pullagent_pull_phase_duration_seconds", "histogram",
         "Duration of each completed phase of a site pull (identity, secrets, pull).");
  for (const auto& [phase, h] : phase_seconds_)
    histogram("pullagent_pull_phase_duration_seconds", "phase=\"" + phase + "\"", h);
  header(out, "pullagent_downloaded_bytes_total", "counter",
         "Blob bytes downloaded and verified (blobs already stored are not counted).");
  out += fmt::format("pullagent_downloaded_bytes_total {}\n", bytes_);
  header(out, "pullagent_blobs_total", "counter",
         "Blobs a pull needed, by whether they were downloaded or already stored.");
  out += fmt::format("pullagent_blobs_total{{source=\"downloaded\"}} {}\n", blobs_downloaded_);
  out += fmt::format("pullagent_blobs_total{{source=\"store\"}} {}\n", blobs_present_);
  header(out, "pullagent_pull_retries_total", "counter",
         "Failed site pulls scheduled to be tried again.");
  out += fmt::format("pullagent_pull_retries_total {}\n", retries_);
  header(out, "pullagent_pulls_in_flight", "gauge", "Site pulls running now.");
  out += fmt::format("pullagent_pulls_in_flight {}\n", in_flight_);
  header(out, "pullagent_sites", "gauge", "Sites configured in the sites directory.");
  out += fmt::format("pullagent_sites {}\n", sites_);
  header(out, "pullagent_sites_directory_healthy", "gauge",
         "1 while the sites directory can be read; 0 while sites are kept as last seen.");
  out += fmt::format("pullagent_sites_directory_healthy {}\n", sites_dir_healthy_ ? 1 : 0);
  header(out, "pullagent_gc_removed_total", "counter",
         "What garbage collection removed: images, blobs and bytes.");
  out += fmt::format("pullagent_gc_removed_total{{kind=\"images\"}} {}\n", gc_images_);
  out += fmt::format("pullagent_gc_removed_total{{kind=\"blobs\"}} {}\n", gc_blobs_);
  out += fmt::format("pullagent_gc_removed_total{{kind=\"bytes\"}} {}\n", gc_bytes_);
  return out;
}

}  // namespace pullagent::agent
