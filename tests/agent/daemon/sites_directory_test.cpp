// The sites directory: which files are sites, and the watcher that follows it.
#include "agent/daemon/sites_directory.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <string>

#include "agent/site/site_state.h"
#include "tests/support/temp_dir.h"

namespace pullagent::agent {
namespace {

using testing::TempDir;

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

}  // namespace
}  // namespace pullagent::agent
