#include "puller/store/content_store.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <thread>

#include "tests/support/fake_clock.h"
#include "tests/support/temp_dir.h"

namespace pullagent::puller {
namespace {

class ContentStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto opened = ContentStore::open(dir_.path());
    ASSERT_TRUE(opened.ok());
    store_ = std::move(opened.value());
  }

  testing::TempDir dir_;
  testing::FakeClock clock_;
  std::unique_ptr<ContentStore> store_;
  const std::string content_ = "layer bytes, layer bytes, layer bytes";
  const Digest digest_ = Sha256::of(content_);
  const int64_t size_ = static_cast<int64_t>(content_.size());
};

TEST_F(ContentStoreTest, CommitMakesVerifiedBlobVisible) {
  auto ingest = store_->beginIngest(digest_, size_, "registry.test/repo", clock_.context());
  ASSERT_TRUE(ingest.ok());
  ASSERT_TRUE((*ingest)->write(content_.substr(0, 10)).ok());
  EXPECT_FALSE(store_->contains(digest_, size_));  // nothing unverified is visible
  ASSERT_TRUE((*ingest)->write(content_.substr(10)).ok());
  ASSERT_TRUE((*ingest)->commit().ok());
  EXPECT_TRUE(store_->contains(digest_, size_));
  EXPECT_EQ(testing::readFile(store_->blobPath(digest_)), content_);
  EXPECT_FALSE(std::filesystem::exists(store_->ingestPath(digest_, "registry.test/repo")));
}

// What the pull records on verification (the blob's source) must be there before another pull
// can find the blob, or take a fresh ingest file at the same name: else that pull sees a stored
// blob without its source and fetches it again (two GETs for one blob under load).
TEST_F(ContentStoreTest, TheVerifiedCallbackRunsBeforeTheBlobIsVisibleOrTheIngestFileGone) {
  const auto ingest_path = store_->ingestPath(digest_, "registry.test/repo");
  auto ingest = store_->beginIngest(digest_, size_, "registry.test/repo", clock_.context());
  ASSERT_TRUE(ingest.ok());
  ASSERT_TRUE((*ingest)->write(content_).ok());
  int called = 0;
  ASSERT_TRUE((*ingest)
                  ->commit([&] {
                    ++called;
                    EXPECT_FALSE(store_->contains(digest_, size_));
                    EXPECT_TRUE(std::filesystem::exists(ingest_path));
                  })
                  .ok());
  EXPECT_EQ(called, 1);
  EXPECT_TRUE(store_->contains(digest_, size_));

  // Wrong bytes are never "verified".
  std::string altered = content_;
  altered[0] ^= 1;
  const Digest other = Sha256::of(content_ + "!");
  auto wrong = store_->beginIngest(other, size_, "registry.test/repo", clock_.context());
  ASSERT_TRUE(wrong.ok());
  ASSERT_TRUE((*wrong)->write(altered).ok());
  EXPECT_FALSE((*wrong)->commit([&] { ++called; }).ok());
  EXPECT_EQ(called, 1);
}

// The commit renames by name: when the ingest file at that name is no longer the one written
// (removed and made again by another writer), nothing is published from it.
TEST_F(ContentStoreTest, AnIngestFileReplacedUnderTheDownloadIsNotCommitted) {
  const auto ingest_path = store_->ingestPath(digest_, "registry.test/repo");
  auto ingest = store_->beginIngest(digest_, size_, "registry.test/repo", clock_.context());
  ASSERT_TRUE(ingest.ok());
  ASSERT_TRUE((*ingest)->write(content_).ok());
  std::filesystem::remove(ingest_path);
  testing::writeFile(ingest_path, "someone else's partial bytes");
  auto status = (*ingest)->commit();
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.error().message.find("replaced"), std::string::npos) << status.error().message;
  EXPECT_FALSE(store_->contains(digest_, size_));
  EXPECT_EQ(testing::readFile(ingest_path), "someone else's partial bytes");
}

TEST_F(ContentStoreTest, WrongBytesAreDiscardedNotCommitted) {
  std::string altered = content_;
  altered[5] ^= 1;
  auto ingest = store_->beginIngest(digest_, size_, "registry.test/repo", clock_.context());
  ASSERT_TRUE((*ingest)->write(altered).ok());
  auto status = (*ingest)->commit();
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code, ErrorCode::kDigestMismatch);
  EXPECT_FALSE(store_->contains(digest_, size_));
  EXPECT_FALSE(std::filesystem::exists(store_->ingestPath(digest_, "registry.test/repo")));
}

TEST_F(ContentStoreTest, LongerThanDescriptorIsRefusedWhileStreaming) {
  auto ingest = store_->beginIngest(digest_, 5, "registry.test/repo", clock_.context());
  auto status = (*ingest)->write(content_);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code, ErrorCode::kDigestMismatch);
}

TEST_F(ContentStoreTest, ShortBlobIsRefusedAtCommit) {
  auto ingest = store_->beginIngest(digest_, size_, "registry.test/repo", clock_.context());
  ASSERT_TRUE((*ingest)->write(content_.substr(0, 4)).ok());
  EXPECT_EQ((*ingest)->commit().error().code, ErrorCode::kDigestMismatch);
}

TEST_F(ContentStoreTest, PartialIngestResumesAcrossStoreInstances) {
  {
    auto ingest = store_->beginIngest(digest_, size_, "registry.test/repo", clock_.context());
    ASSERT_TRUE((*ingest)->write(content_.substr(0, 12)).ok());
  }  // as if the process died: the partial file stays
  auto reopened = ContentStore::open(dir_.path());
  auto ingest = (*reopened)->beginIngest(digest_, size_, "registry.test/repo", clock_.context());
  ASSERT_TRUE(ingest.ok());
  EXPECT_EQ((*ingest)->offset(), 12);
  ASSERT_TRUE((*ingest)->write(content_.substr(12)).ok());
  ASSERT_TRUE((*ingest)->commit().ok());  // the hash covered the resumed bytes too
}

// Parallel ranges write ahead of the verified prefix (writeAt) and join bytes to it in order
// (adopt); what an ingest leaves for a resume is the prefix alone, never bytes written ahead.
TEST_F(ContentStoreTest, BytesWrittenAheadAndNotJoinedAreCutWhenTheIngestEnds) {
  const auto path = store_->ingestPath(digest_, "registry.test/repo");
  {
    auto ingest = store_->beginIngest(digest_, size_, "registry.test/repo", clock_.context());
    ASSERT_TRUE((*ingest)->writeAt(6, content_.substr(6, 4)).ok());
    ASSERT_TRUE((*ingest)->writeAt(14, content_.substr(14, 4)).ok());
    EXPECT_TRUE(std::filesystem::exists(path.string() + ".prefix"));
    ASSERT_TRUE((*ingest)->write(content_.substr(0, 6)).ok());
    ASSERT_TRUE((*ingest)->adopt(4).ok());  // bytes 6-9 join; 14-17 stay ahead
    EXPECT_EQ((*ingest)->offset(), 10);
    EXPECT_FALSE((*ingest)->writeAt(2, "x").ok());  // inside the prefix
  }
  EXPECT_EQ(testing::readFile(path), content_.substr(0, 10));
  EXPECT_FALSE(std::filesystem::exists(path.string() + ".prefix"));
  auto ingest = store_->beginIngest(digest_, size_, "registry.test/repo", clock_.context());
  EXPECT_EQ((*ingest)->offset(), 10);
  ASSERT_TRUE((*ingest)->write(content_.substr(10)).ok());
  ASSERT_TRUE((*ingest)->commit().ok());
}

TEST_F(ContentStoreTest, OversizedPartialIsStartedOver) {
  testing::writeFile(store_->ingestPath(digest_, "registry.test/repo"), content_ + "garbage");
  auto ingest = store_->beginIngest(digest_, size_, "registry.test/repo", clock_.context());
  EXPECT_EQ((*ingest)->offset(), 0);
}

TEST_F(ContentStoreTest, PartialBytesAreResumedOnlyFromTheirOwnSource) {
  const std::string hostile = "evil.example/app";
  const std::string honest = "registry.test/repo";
  {
    auto partial = store_->beginIngest(digest_, size_, hostile, clock_.context());
    ASSERT_TRUE(partial.ok());
    ASSERT_TRUE((*partial)->write("poisoned").ok());
  }
  auto ingest = store_->beginIngest(digest_, size_, honest, clock_.context());
  ASSERT_TRUE(ingest.ok());
  EXPECT_EQ((*ingest)->offset(), 0);  // the hostile source's bytes are not ours to continue
  ASSERT_TRUE((*ingest)->write(content_).ok());
  EXPECT_TRUE((*ingest)->commit().ok());
  auto again = store_->beginIngest(digest_, size_, hostile, clock_.context());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, nullptr);  // stored now, whoever asks
}

TEST_F(ContentStoreTest, ADownloadNeverWaitsForAnotherSource) {
  auto stalled = store_->beginIngest(digest_, size_, "evil.example/app", clock_.context());
  ASSERT_TRUE(stalled.ok());
  // Held open (a dribbling registry); the honest source gets its own ingest at once.
  auto honest = store_->beginIngest(digest_, size_, "registry.test/repo", clock_.context());
  ASSERT_TRUE(honest.ok());
  ASSERT_NE(*honest, nullptr);
  ASSERT_TRUE((*honest)->write(content_).ok());
  ASSERT_TRUE((*honest)->commit().ok());
  // The slow one finishing later keeps the stored copy and drops its own.
  ASSERT_TRUE((*stalled)->write(content_).ok());
  EXPECT_TRUE((*stalled)->commit().ok());
  EXPECT_EQ(testing::readFile(store_->blobPath(digest_)), content_);
  EXPECT_FALSE(std::filesystem::exists(store_->ingestPath(digest_, "evil.example/app")));
}

TEST_F(ContentStoreTest, OneIngestPerDigestAtATime) {
  auto first = store_->beginIngest(digest_, size_, "registry.test/repo", clock_.context());
  ASSERT_TRUE(first.ok());
  std::atomic<bool> second_started{false};
  std::thread waiter([&] {
    SystemClock real;
    Context wait_ctx{&real, {}, std::nullopt};
    auto second = store_->beginIngest(digest_, size_, "registry.test/repo", wait_ctx);
    second_started = true;
    ASSERT_TRUE(second.ok());
    EXPECT_EQ((*second)->offset(), size_);  // sees the bytes the first writer wrote
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_FALSE(second_started.load());
  ASSERT_TRUE((*first)->write(content_).ok());
  first.value().reset();
  waiter.join();
  EXPECT_TRUE(second_started.load());
}

TEST_F(ContentStoreTest, AWaiterFindsTheFinishedBlobAndLeavesNoIngestBehind) {
  auto first = store_->beginIngest(digest_, size_, "registry.test/repo", clock_.context());
  ASSERT_TRUE(first.ok());
  std::thread waiter([&] {
    SystemClock real;
    Context wait_ctx{&real, {}, std::nullopt};
    auto second = store_->beginIngest(digest_, size_, "registry.test/repo", wait_ctx);
    ASSERT_TRUE(second.ok());
    EXPECT_EQ(second->get(), nullptr);  // stored meanwhile: nothing to ingest
  });
  ASSERT_TRUE((*first)->write(content_).ok());
  ASSERT_TRUE((*first)->commit().ok());
  first.value().reset();
  waiter.join();
  EXPECT_TRUE(store_->contains(digest_, size_));
  EXPECT_TRUE(std::filesystem::is_empty(dir_ / "ingest"));
  auto later = store_->beginIngest(digest_, size_, "registry.test/repo", clock_.context());
  ASSERT_TRUE(later.ok());
  EXPECT_EQ(later->get(), nullptr);
  EXPECT_TRUE(std::filesystem::is_empty(dir_ / "ingest"));
}

TEST_F(ContentStoreTest, PutBlobVerifiesInMemoryContent) {
  EXPECT_TRUE(store_->putBlob(digest_, content_, clock_.context()).ok());
  EXPECT_TRUE(store_->contains(digest_, size_));
  EXPECT_EQ(store_->putBlob(Sha256::of("other"), content_, clock_.context()).error().code,
            ErrorCode::kDigestMismatch);
}

}  // namespace
}  // namespace pullagent::puller
