// The service's metrics, as Prometheus reads them.
#include "agent/daemon/metrics.h"

#include <gtest/gtest.h>

#include <string>

namespace pullagent::agent {
namespace {

TEST(Metrics, RendersThePrometheusTextFormat) {
  Metrics metrics;
  metrics.pullFinished("success", 3.2);
  metrics.pullFinished("failure", 0.1);
  metrics.phaseDuration("identity", 0.05);
  metrics.bytesDownloaded(1000);
  metrics.blobs(2, 1, 5);
  metrics.retryScheduled();
  metrics.setPullsInFlight(1);
  metrics.setSites(4);
  metrics.snapshots(3, 1);
  metrics.snapshotsOnDisk(7, 4096);
  const std::string text = metrics.render();
  for (const char* line : {
           "# TYPE pullagent_pulls_total counter\n",
           "pullagent_pulls_total{result=\"success\"} 1\n",
           "pullagent_pulls_total{result=\"failure\"} 1\n",
           "pullagent_pulls_total{result=\"cancelled\"} 0\n",
           "pullagent_pull_duration_seconds_bucket{le=\"2.5\"} 0\n",
           "pullagent_pull_duration_seconds_bucket{le=\"5\"} 1\n",
           "pullagent_pull_duration_seconds_bucket{le=\"+Inf\"} 1\n",
           "pullagent_pull_duration_seconds_count 1\n",
           "pullagent_pull_phase_duration_seconds_bucket{phase=\"identity\",le=\"0.1\"} 1\n",
           "pullagent_downloaded_bytes_total 1000\n",
           "pullagent_blobs_total{source=\"store\"} 1\n",
           "pullagent_blobs_total{source=\"snapshot\"} 5\n",
           "pullagent_pull_retries_total 1\n",
           "pullagent_pulls_in_flight 1\n",
           "pullagent_sites 4\n",
           "pullagent_layer_snapshots_total{result=\"reused\"} 3\n",
           "pullagent_layer_snapshots_total{result=\"unpacked\"} 1\n",
           "pullagent_layer_snapshots 7\n",
           "pullagent_layer_snapshot_bytes 4096\n",
       }) {
    EXPECT_NE(text.find(line), std::string::npos) << line << "\n" << text;
  }
  EXPECT_EQ(text.back(), '\n');
}

// Lazy pulling's totals only grow: each call adds what is new since the last, the read latency
// histogram included.
TEST(Metrics, LazyPullingCountsWhatIsNewSinceTheLastTotals) {
  Metrics metrics;
  puller::LazyLayerHost::Totals totals;
  totals.layers = 2;
  totals.bytes = 100;
  totals.bytes_held = 25;
  totals.reads = 3;
  totals.read_seconds[0] = 2;  // at most 1 ms
  totals.read_seconds[4] = 1;  // at most 100 ms
  totals.read_seconds_sum = 0.06;
  metrics.lazyPulling(totals);
  totals.reads = 4;
  totals.read_seconds[8] = 1;  // at most 30 s
  totals.read_seconds_sum = 12.06;
  metrics.lazyPulling(totals);
  const std::string text = metrics.render();
  for (const char* line : {
           "pullagent_lazy_layers 2\n",
           "pullagent_lazy_fetched_ratio 0.25\n",
           "pullagent_lazy_reads_total 4\n",
           "pullagent_lazy_read_seconds_bucket{le=\"0.001\"} 2\n",
           "pullagent_lazy_read_seconds_bucket{le=\"0.1\"} 3\n",
           "pullagent_lazy_read_seconds_bucket{le=\"30\"} 4\n",
           "pullagent_lazy_read_seconds_count 4\n",
           "pullagent_lazy_read_seconds_sum 12.06\n",
       }) {
    EXPECT_NE(text.find(line), std::string::npos) << line << "\n" << text;
  }
}

}  // namespace
}  // namespace pullagent::agent
