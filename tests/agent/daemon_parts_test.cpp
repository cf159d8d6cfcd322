// The daemon's small parts: site state files, the sites directory, metrics,
// and sd_notify.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <optional>
#include <string>

#include "agent/daemon/metrics.h"
#include "agent/daemon/sites_directory.h"
#include "agent/daemon/systemd_notifier.h"
#include "agent/site/site_state.h"
#include "tests/support/notify_socket.h"
#include "tests/support/temp_dir.h"

namespace pullagent::agent {
namespace {

using testing::TempDir;

TEST(SiteState, RoundTripsThroughItsJson) {
  SiteState state;
  state.site = "web";
  state.config_file = "/etc/pullagent/sites/web.json";
  state.config_sha256 = "abc";
  state.image = "myreg.azurecr.io/app:v1";
  state.phase = SitePhase::kFailed;
  state.progress = {1, 3, 100, 300};
  state.attempts = 2;
  state.last_error = SiteError{"identity", "not assigned \"x\"",
                               std::chrono::system_clock::from_time_t(1790000000)};
  state.published = PublishedImage{"myreg.azurecr.io/app:v0",
                                   "sha256:1",
                                   "/s/images/1",
                                   "abd",
                                   std::chrono::system_clock::from_time_t(1780000000),
                                   "sha256:index",
                                   "web"};
  state.sidecars.push_back(PublishedImage{"docker.io/library/redis:7", "sha256:r", "/s/images/r",
                                          "abd", std::chrono::system_clock::from_time_t(1780000000),
                                          "sha256:r", "cache"});
  state.containers = {{"web", "myreg.azurecr.io/app:v1", "ready", {2, 2, 20, 20}},
                      {"cache", "docker.io/library/redis:7", "failed", {0, 3, 5, 300}}};
  state.next_attempt_at = std::chrono::system_clock::from_time_t(1790000020);
  state.last_checked_at = std::chrono::system_clock::from_time_t(1790000030);
  state.updated_at = std::chrono::system_clock::from_time_t(1790000001);

  auto parsed = parseSiteState(siteStateJson(state));
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->site, "web");
  EXPECT_EQ(parsed->phase, SitePhase::kFailed);
  EXPECT_EQ(parsed->progress, state.progress);
  EXPECT_EQ(parsed->attempts, 2);
  EXPECT_EQ(parsed->last_error->message, "not assigned \"x\"");
  EXPECT_EQ(parsed->last_error->at, state.last_error->at);
  EXPECT_EQ(parsed->published->digest, "sha256:1");
  EXPECT_EQ(parsed->published->resolved_digest, "sha256:index");
  EXPECT_EQ(parsed->published->container, "web");
  ASSERT_EQ(parsed->sidecars.size(), 1u);
  EXPECT_EQ(parsed->sidecars[0].container, "cache");
  EXPECT_EQ(parsed->sidecars[0].digest, "sha256:r");
  EXPECT_EQ(parsed->containers, state.containers);
  EXPECT_EQ(publishedUnit(parsed.value()).size(), 2u);
  EXPECT_EQ(parsed->next_attempt_at, state.next_attempt_at);
  EXPECT_EQ(parsed->last_checked_at, state.last_checked_at);
  EXPECT_FALSE(parsed->last_attempt_at.has_value());
  EXPECT_EQ(formatUtc(state.updated_at), "2026-09-21T14:13:21Z");
  // Written before tags were followed: the manifest digest is what the tag resolved to.
  auto older = parseSiteState(
      R"({"site":"web","phase":"published","published":{"image":"r/a:v1","digest":"sha256:2",)"
      R"("path":"/s/images/2","configSha256":"x","at":"2026-01-01T00:00:00Z"}})");
  ASSERT_TRUE(older.ok()) << older.error().message;
  EXPECT_EQ(older->published->resolved_digest, "sha256:2");
  EXPECT_FALSE(older->last_checked_at.has_value());
  EXPECT_TRUE(older->sidecars.empty());
  EXPECT_EQ(older->published->container, "");
  // A hostile list is an error, not a crash.
  EXPECT_FALSE(parseSiteState(R"({"site":"web","sidecars":{"a":1}})").ok());
  EXPECT_FALSE(parseSiteState(R"({"site":"web","containers":[{"name":7}]})").ok());
  EXPECT_FALSE(parseSiteState("{}").ok());
  EXPECT_FALSE(parseSiteState("not json").ok());
}

TEST(SiteState, TheStoreWritesReadsAndRemoves) {
  TempDir dir;
  SiteStateStore store(puller::StateDir(dir.path()));
  SiteState a;
  a.site = "a";
  SiteState b;
  b.site = "b";
  ASSERT_TRUE(store.write(b).ok());
  ASSERT_TRUE(store.write(a).ok());
  testing::writeFile(store.dir() / "broken.json", "{");
  auto states = store.readAll();
  ASSERT_EQ(states.size(), 2u);
  EXPECT_EQ(states[0].site, "a");
  ASSERT_TRUE(store.remove("a").ok());
  ASSERT_TRUE(store.remove("a").ok());  // already gone is fine
  EXPECT_EQ(store.readAll().size(), 1u);
}

TEST(SitesDirectory, TakesOnlySiteFilesAndFingerprintsTheirBytes) {
  for (const char* good : {"web.json", "my-site_2.prod.json", "A.json"})
    EXPECT_TRUE(isSiteFileName(good)) << good;
  for (const char* bad : {".web.json", "web.json.tmp", "web.json~", ".json", "web", "we b.json",
                          "../x.json", "web.JSON", "caf\xc3\xa9.json"}) {
    EXPECT_FALSE(isSiteFileName(bad)) << bad;
  }
  TempDir dir;
  testing::writeFile(dir / "web.json", "{}");
  testing::writeFile(dir / ".web.json.swp", "x");
  testing::writeFile(dir / "notes.txt", "x");
  std::filesystem::create_directory(dir / "dir.json");
  ASSERT_EQ(::mkfifo((dir / "fifo.json").c_str(), 0600), 0);
  auto sites = scanSites(dir.path());  // must not block on the FIFO
  ASSERT_TRUE(sites.ok());
  ASSERT_EQ(sites->size(), 3u);
  const std::string before = sites->at("web").sha256;
  EXPECT_EQ(before.size(), 64u);
  // Entries that are not regular files are sites that cannot be read: their attempts say so.
  EXPECT_EQ(sites->at("dir").sha256, "");
  EXPECT_EQ(sites->at("fifo").sha256, "");
  testing::writeFile(dir / "web.json", "{ }");
  EXPECT_NE(scanSites(dir.path())->at("web").sha256, before);
  // A missing directory is an error, never "no sites".
  auto missing = scanSites(dir / "missing");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
}

TEST(SiteStateStore, AStateFileSpeaksOnlyForTheSiteItsNameNames) {
  TempDir dir;
  SiteStateStore store(puller::StateDir(dir.path()));
  SiteState web;
  web.site = "web";
  ASSERT_TRUE(store.write(web).ok());
  // Planted or damaged files: a site field naming another site or a path, a FIFO, a link to
  // /dev/zero, a name that is no site's. None is read as a site; none blocks.
  SiteState liar;
  liar.site = "../../etc/passwd";
  testing::writeFile(dir / "sites" / "api.json", siteStateJson(liar));
  ASSERT_EQ(::mkfifo((dir / "sites" / "fifo.json").c_str(), 0600), 0);
  std::filesystem::create_symlink("/dev/zero", dir / "sites" / "zero.json");
  testing::writeFile(dir / "sites" / "..json", siteStateJson(web));
  auto all = store.readAll();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].site, "web");
}

TEST(SitesDirectory, TheWatcherFollowsADirectoryReplacedUnderIt) {
  TempDir top;
  std::filesystem::create_directory(top / "sites");
  auto watcher = SitesWatcher::create(top / "sites");
  ASSERT_GE(watcher.fd(), 0);
  // A deployment tool builds the new directory aside and renames it over the old one.
  std::filesystem::create_directory(top / "sites.new");
  std::filesystem::rename(top / "sites", top / "sites.old");
  std::filesystem::rename(top / "sites.new", top / "sites");
  EXPECT_TRUE(watcher.drain());
  testing::writeFile(top / "sites" / "web.json", "{}");
  EXPECT_TRUE(watcher.drain());  // events from the new directory
  // And through a symlink swapped to another directory.
  std::filesystem::create_directory(top / "b");
  std::filesystem::remove_all(top / "sites");
  std::filesystem::create_directory_symlink(top / "b", top / "sites");
  EXPECT_TRUE(watcher.drain());
  EXPECT_FALSE(watcher.drain());
  testing::writeFile(top / "b" / "api.json", "{}");
  EXPECT_TRUE(watcher.drain());
}

TEST(SitesDirectory, TheWatcherSeesFilesArriveAndGo) {
  TempDir dir;
  auto watcher = SitesWatcher::create(dir.path());
  ASSERT_GE(watcher.fd(), 0);
  EXPECT_FALSE(watcher.drain());
  testing::writeFile(dir / "web.json", "{}");
  EXPECT_TRUE(watcher.drain());
  EXPECT_FALSE(watcher.drain());
  std::filesystem::remove(dir / "web.json");
  EXPECT_TRUE(watcher.drain());
  // A directory that does not exist yet is watched through its parent: its creation is news,
  // and so are the files that arrive in it afterwards.
  auto later = SitesWatcher::create(dir / "later");
  ASSERT_GE(later.fd(), 0);
  std::filesystem::create_directory(dir / "later");
  EXPECT_TRUE(later.drain());
  testing::writeFile(dir / "later" / "web.json", "{}");
  EXPECT_TRUE(later.drain());
}

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

// Sets an environment variable for one test and puts back what was there.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name))
      old_ = old;
    if (value != nullptr)
      ::setenv(name, value, 1);
    else
      ::unsetenv(name);
  }
  ~ScopedEnv() {
    if (old_)
      ::setenv(name_, old_->c_str(), 1);
    else
      ::unsetenv(name_);
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

TEST(SystemdNotifier, SendsToTheSocketAndReadsTheWatchdog) {
  TempDir dir;
  testing::NotifySocket socket((dir / "notify").string());
  {
    ScopedEnv notify_socket("NOTIFY_SOCKET", socket.path().c_str());
    ScopedEnv usec("WATCHDOG_USEC", "3000000");
    ScopedEnv pid("WATCHDOG_PID", std::to_string(::getpid()).c_str());
    auto notifier = SystemdNotifier::fromProcess();
    ASSERT_TRUE(notifier.enabled());
    EXPECT_EQ(notifier.watchdogInterval(), std::chrono::seconds(3));
    notifier.notify("READY=1\nSTATUS=idle");
    EXPECT_TRUE(socket.waitForLine("STATUS=idle", std::chrono::seconds(5)));
  }
  // Not started by systemd, or the watchdog meant for another process: nothing.
  {
    ScopedEnv notify_socket("NOTIFY_SOCKET", nullptr);
    ScopedEnv usec("WATCHDOG_USEC", nullptr);
    auto absent = SystemdNotifier::fromProcess();
    EXPECT_FALSE(absent.enabled());
    EXPECT_FALSE(absent.watchdogInterval().has_value());
    absent.notify("READY=1");
  }
  {
    ScopedEnv usec("WATCHDOG_USEC", "3000000");
    ScopedEnv pid("WATCHDOG_PID", "1");
    EXPECT_FALSE(SystemdNotifier::fromProcess().watchdogInterval().has_value());
  }
}

}  // namespace
}  // namespace pullagent::agent
