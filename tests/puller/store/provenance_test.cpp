// Provenance records (who served a blob, what it decompresses to) and the reuse rules built on
// them. A record is read as hostile: anything but a well-formed record of this very blob is
// "no proof", and no proof means the bytes are fetched again.
#include "puller/store/provenance.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <thread>
#include <vector>

#include "puller/oci/sha256.h"
#include "puller/pipeline/blob_reuse.h"
#include "puller/reference/reference.h"
#include "tests/support/temp_dir.h"

namespace pullagent::puller {
namespace {

namespace fs = std::filesystem;

class ProvenanceTest : public ::testing::Test {
 protected:
  fs::path recordPath(const Digest& digest) { return store_.dir() / (digest.hex() + ".json"); }

  testing::TempDir dir_;
  ProvenanceStore store_{dir_.path() / "provenance"};
  const Digest blob_ = Sha256::of("a layer");
  const Digest diff_id_ = Sha256::of("its tar");
  const BlobSource alice_{"reg.io", "alice/app"};
  const BlobSource bob_{"reg.io", "bob/app"};
};

TEST_F(ProvenanceTest, SourcesAndTheDiffIdRoundTrip) {
  EXPECT_FALSE(store_.read(blob_).has_value());
  ASSERT_TRUE(store_.addSource(blob_, alice_).ok());
  ASSERT_TRUE(store_.addSource(blob_, bob_).ok());
  ASSERT_TRUE(store_.addSource(blob_, alice_).ok());  // once is enough
  ASSERT_TRUE(store_.recordDiffId(blob_, diff_id_).ok());
  auto record = store_.read(blob_);
  ASSERT_TRUE(record.has_value());
  EXPECT_EQ(record->digest, blob_);
  EXPECT_EQ(record->sources, (std::set<BlobSource>{alice_, bob_}));
  EXPECT_EQ(record->diff_id, diff_id_);
  EXPECT_TRUE(record->servedByRegistry("reg.io"));
  EXPECT_FALSE(record->servedByRegistry("other.io"));
  EXPECT_EQ(store_.list().value(), std::set<Digest>{blob_});
  struct stat info {};
  ASSERT_EQ(::stat(store_.dir().c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0700u);
  ASSERT_TRUE(store_.remove(blob_).ok());
  EXPECT_FALSE(store_.read(blob_).has_value());
}

TEST_F(ProvenanceTest, ACorruptRecordIsNoProofAndIsReplacedByTheNextOne) {
  ASSERT_TRUE(store_.prepare().ok());
  for (const std::string& text : std::vector<std::string>{
           "", "{", "null", "[]", R"({"digest":"sha256:00","sources":[]})",
           R"({"sources":[{"registry":"reg.io","repository":"alice/app"}]})",
           R"({"digest":")" + blob_.str() + R"(","sources":{}})",
           R"({"digest":")" + blob_.str() + R"(","sources":[{"registry":"reg.io"}]})",
           R"({"digest":")" + blob_.str() + R"(","diffId":"md5:x","sources":[]})"}) {
    testing::writeFile(recordPath(blob_), text);
    EXPECT_FALSE(store_.read(blob_).has_value()) << text;
  }
  ASSERT_TRUE(store_.addSource(blob_, bob_).ok());
  auto record = store_.read(blob_);
  ASSERT_TRUE(record.has_value());
  EXPECT_EQ(record->sources, std::set<BlobSource>{bob_});
}

TEST_F(ProvenanceTest, ARecordOfAnotherBlobProvesNothingForThisOne) {
  const Digest other = Sha256::of("another layer");
  ASSERT_TRUE(store_.addSource(other, alice_).ok());
  fs::copy_file(recordPath(other), recordPath(blob_));
  EXPECT_FALSE(store_.read(blob_).has_value());
}

TEST_F(ProvenanceTest, HostileRecordsAreNoProof) {
  ASSERT_TRUE(store_.prepare().ok());
  auto with_source = [&](const std::string& registry, const std::string& repository) {
    return R"({"digest":")" + blob_.str() + R"(","sources":[{"registry":")" + registry +
           R"(","repository":")" + repository + R"("}]})";
  };
  for (const auto& [registry, repository] :
       std::vector<std::pair<std::string, std::string>>{{"reg.io", "../alice"},
                                                        {"reg.io", "/alice/app"},
                                                        {"reg.io", "Alice/App"},
                                                        {"reg io", "alice/app"},
                                                        {"", "alice/app"},
                                                        {"reg.io/x", "alice/app"},
                                                        // separators the reference grammar
                                                        // never puts side by side
                                                        {"reg.io", "alice/a-.b"},
                                                        {"reg.io", "alice/a..b"},
                                                        {"reg.io:port", "alice/app"},
                                                        {std::string(300, 'r'), "alice/app"}}) {
    testing::writeFile(recordPath(blob_), with_source(registry, repository));
    EXPECT_FALSE(store_.read(blob_).has_value()) << registry << " " << repository;
  }
  // Too large, a symbolic link to a good record, a FIFO: none is read as a record.
  testing::writeFile(recordPath(blob_), std::string(kMaxProvenanceRecordBytes + 1, ' '));
  EXPECT_FALSE(store_.read(blob_).has_value());
  fs::remove(recordPath(blob_));
  testing::writeFile(dir_.path() / "good.json", with_source("reg.io", "alice/app"));
  fs::create_symlink(dir_.path() / "good.json", recordPath(blob_));
  EXPECT_FALSE(store_.read(blob_).has_value());
  fs::remove(recordPath(blob_));
  ASSERT_EQ(::mkfifo(recordPath(blob_).c_str(), 0600), 0);
  EXPECT_FALSE(store_.read(blob_).has_value());
}

// A record names exactly what an image reference can: the same grammar decides.
TEST_F(ProvenanceTest, EverySourceAReferenceCanNameIsKept) {
  ASSERT_TRUE(store_.prepare().ok());
  for (const char* text : {"myreg.azurecr.io/alice/app:v1", "127.0.0.1:5000/a__b/c-d.e:v1",
                           "[::1]:5000/app:v1", "localhost/x/y/z:v1"}) {
    auto ref = ImageRef::parse(text);
    ASSERT_TRUE(ref.ok()) << text;
    ASSERT_TRUE(store_.addSource(blob_, {ref->domain, ref->repository}).ok()) << text;
    auto record = store_.read(blob_);
    ASSERT_TRUE(record.has_value()) << text;
    EXPECT_TRUE(record->servedBy({ref->domain, ref->repository})) << text;
  }
}

TEST_F(ProvenanceTest, AnInvalidSourceIsNeverWritten) {
  EXPECT_FALSE(store_.addSource(blob_, {"reg.io", "../../etc"}).ok());
  EXPECT_FALSE(store_.read(blob_).has_value());
}

TEST_F(ProvenanceTest, ListSkipsWhatIsNotARecord) {
  ASSERT_TRUE(store_.addSource(blob_, alice_).ok());
  testing::writeFile(store_.dir() / "notes.txt", "x");
  testing::writeFile(store_.dir() / "zz.json", "{}");
  EXPECT_EQ(store_.list().value(), std::set<Digest>{blob_});
}

TEST_F(ProvenanceTest, ConcurrentSourcesAreAllKept) {
  std::vector<std::jthread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      ProvenanceStore own(store_.dir());  // as pulls of other sites (or processes) do
      EXPECT_TRUE(own.addSource(blob_, {"reg.io", "site" + std::to_string(i) + "/app"}).ok());
    });
  }
  threads.clear();
  auto record = store_.read(blob_);
  ASSERT_TRUE(record.has_value());
  EXPECT_EQ(record->sources.size(), 8u);
}

// The decision table of the reuse rules.
TEST(ReuseRules, OnlyTheRecordedSourceReusesWithoutARequest) {
  const BlobSource pull{"reg.io", "alice/app"};
  ProvenanceRecord record;
  record.digest = Sha256::of("blob");
  EXPECT_EQ(reuseRule(std::nullopt, pull, SharedBlobProof::kHead), ReuseRule::kFetchAgain);
  EXPECT_EQ(reuseRule(record, pull, SharedBlobProof::kHead), ReuseRule::kFetchAgain);

  record.sources = {{"reg.io", "alice/app"}};
  EXPECT_EQ(reuseRule(record, pull, SharedBlobProof::kHead), ReuseRule::kSameRepository);
  EXPECT_EQ(reuseRule(record, pull, SharedBlobProof::kFetch), ReuseRule::kSameRepository);

  record.sources = {{"reg.io", "bob/app"}};
  EXPECT_EQ(reuseRule(record, pull, SharedBlobProof::kHead), ReuseRule::kHeadInRepository);
  EXPECT_EQ(reuseRule(record, pull, SharedBlobProof::kFetch), ReuseRule::kFetchAgain);

  // Another registry, even with the same repository name: the bytes again.
  record.sources = {{"other.io", "alice/app"}, {"reg.io.evil", "alice/app"}};
  EXPECT_EQ(reuseRule(record, pull, SharedBlobProof::kHead), ReuseRule::kFetchAgain);
  // A registry named with a port is another registry.
  record.sources = {{"reg.io:443", "alice/app"}};
  EXPECT_EQ(reuseRule(record, pull, SharedBlobProof::kHead), ReuseRule::kFetchAgain);
}

TEST(ReuseRules, TheSettingParses) {
  EXPECT_EQ(parseSharedBlobProof("head").value(), SharedBlobProof::kHead);
  EXPECT_EQ(parseSharedBlobProof("fetch").value(), SharedBlobProof::kFetch);
  auto bad = parseSharedBlobProof("ranges");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("\"ranges\""), std::string::npos);
}

}  // namespace
}  // namespace pullagent::puller
