// Site state files: their JSON, and the store that keeps one per site.
#include "agent/site/site_state.h"

#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <string>

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
                                   "web",
                                   "Notary signature sha256:s of sha256:index by \"CN=a\""};
  state.sidecars.push_back(PublishedImage{"docker.io/library/redis:7", "sha256:r", "/s/images/r",
                                          "abd", std::chrono::system_clock::from_time_t(1780000000),
                                          "sha256:r", "cache", ""});
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
  EXPECT_EQ(parsed->published->signature, "Notary signature sha256:s of sha256:index by \"CN=a\"");
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

}  // namespace
}  // namespace pullagent::agent
