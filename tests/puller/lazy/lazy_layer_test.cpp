#include "puller/lazy/lazy_layer.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "tests/support/estargz_sample.h"
#include "tests/support/fake_clock.h"
#include "tests/support/temp_dir.h"

namespace pullagent::puller::estargz {
namespace {

using testing::EstargzSample;

class LazyLayerTest : public ::testing::Test {
 protected:
  // The registry: serves the blob by range, counting requests; `tamper` flips the byte at that
  // offset in every answer that holds it.
  RangeFetch fetch() {
    return [this](int64_t first, int64_t last, const Context&) -> Result<std::string> {
      ++requests_;
      {
        std::lock_guard lock(ranges_mutex_);
        ranges_.emplace_back(first, last + 1);
      }
      if (offline_)
        return makeError(ErrorCode::kUnavailable, "connection refused");
      if (delay_.count() > 0)
        std::this_thread::sleep_for(delay_);
      std::string bytes =
          blob_.substr(static_cast<size_t>(first), static_cast<size_t>(last - first + 1));
      if (tamper_ >= first && tamper_ <= last)
        bytes[static_cast<size_t>(tamper_ - first)] ^= 0x55;
      return bytes;
    };
  }
  std::unique_ptr<LazyLayer> open() {
    auto layer = LazyLayer::open(layer_, fetch(), dir_.path() / "cache", clock_.context());
    EXPECT_TRUE(layer.ok()) << layer.error().message;
    if (!layer.ok())
      return nullptr;
    // Each request asks for the member it needs alone: these tests count them.
    layer.value()->setReaderWindow(0, 0);
    return std::move(layer.value());
  }

  testing::TempDir dir_;
  testing::FakeClock clock_;
  std::string blob_ = EstargzSample::blob();
  Descriptor layer_ = EstargzSample::descriptor();
  std::atomic<int> requests_{0};
  bool offline_ = false;
  int64_t tamper_ = -1;
  std::chrono::milliseconds delay_{0};
  std::mutex ranges_mutex_;
  std::vector<std::pair<int64_t, int64_t>> ranges_;  // asked for: [first, last + 1)
};

// A reader's request carries the bytes after the member it needs (up to the window); later reads
// of them ask nothing. The fill's requests are not widened, nor is any over held bytes.
TEST_F(LazyLayerTest, AReadersRequestCarriesTheBytesAfterItsMember) {
  auto layer = open();
  ASSERT_NE(layer, nullptr);
  const Entry* big = layer->find("bin/big");
  ASSERT_NE(big, nullptr);
  const uint64_t first = big->chunks[0].offset;
  const uint64_t second = big->chunks[1].offset;
  const uint64_t third = big->chunks[2].offset;
  // Held bytes right after it stop the widening there.
  layer->setReaderWindow(1 << 20, 1 << 20);
  ASSERT_TRUE(layer->read(*big, big->chunks[1].file_offset, 1, clock_.context()).ok());
  EXPECT_EQ(requests_, 3);
  const int64_t after_second = layer->bytesHeld();
  EXPECT_GT(after_second, static_cast<int64_t>(third - second));  // more than its member
  ASSERT_TRUE(layer->read(*big, 0, 1 << 20, clock_.context()).ok());
  EXPECT_EQ(requests_, 4);  // the first member only: the second's bytes are held
  EXPECT_EQ(layer->bytesHeld(), after_second + static_cast<int64_t>(second - first));
  EXPECT_EQ(layer->read(*big, 0, 1 << 20, clock_.context()).value(), EstargzSample::big());
  EXPECT_EQ(requests_, 4);
}

// What `pullagent status` reads: how much of its layer a cache holds, from its files alone, a
// line cut by a kill skipped and overlapping ranges counted once.
TEST_F(LazyLayerTest, ACachesFillIsReadFromItsFiles) {
  EXPECT_EQ(LazyLayer::cacheFill(dir_.path() / "cache").size, 0);  // no cache yet
  auto layer = open();
  ASSERT_NE(layer, nullptr);
  const Entry* big = layer->find("bin/big");
  ASSERT_NE(big, nullptr);
  ASSERT_TRUE(layer->read(*big, 0, 10, clock_.context()).ok());
  auto fill = LazyLayer::cacheFill(dir_.path() / "cache");
  EXPECT_EQ(fill.size, static_cast<int64_t>(blob_.size()));
  EXPECT_EQ(fill.held, layer->bytesHeld());
  ASSERT_TRUE(layer->fill(clock_.context()));
  EXPECT_EQ(LazyLayer::cacheFill(dir_.path() / "cache").held, static_cast<int64_t>(blob_.size()));
  {
    // What a process killed while writing leaves: ranges held already, and a cut line.
    std::ofstream record(dir_.path() / "cache/held", std::ios::app);
    const uint64_t at = big->chunks[0].offset;
    record << at << " " << at + 5 << "\n" << at << " " << blob_.size() + 100 << "\n1";
  }
  EXPECT_EQ(LazyLayer::cacheFill(dir_.path() / "cache").held, static_cast<int64_t>(blob_.size()));
}

TEST_F(LazyLayerTest, TheTocTakesTwoRangesAndEachChunkOneVerifiedFetch) {
  auto layer = open();
  ASSERT_NE(layer, nullptr);
  EXPECT_EQ(requests_, 2);  // the footer, then the TOC
  const Entry* big = layer->find("bin/big");
  ASSERT_NE(big, nullptr);
  ASSERT_EQ(big->chunks.size(), 3u);

  // A read across the first two chunks' boundary fetches those two members only.
  auto middle = layer->read(*big, 900, 300, clock_.context());
  ASSERT_TRUE(middle.ok()) << middle.error().message;
  EXPECT_EQ(*middle, EstargzSample::big().substr(900, 300));
  EXPECT_EQ(requests_, 4);
  auto whole = layer->read(*big, 0, 1 << 20, clock_.context());
  ASSERT_TRUE(whole.ok()) << whole.error().message;
  EXPECT_EQ(*whole, EstargzSample::big());
  EXPECT_EQ(requests_, 5);
  EXPECT_EQ(layer->stats().chunks_verified, 3);
  EXPECT_EQ(layer->read(*big, 2500, 10, clock_.context()).value(), "");
  EXPECT_EQ(layer->find("bin/nothing"), nullptr);
}

TEST_F(LazyLayerTest, AChunkWhoseBytesWereAlteredIsNeverReturned) {
  auto layer = open();
  ASSERT_NE(layer, nullptr);
  const Entry* big = layer->find("bin/big");
  ASSERT_NE(big, nullptr);
  tamper_ = static_cast<int64_t>(big->chunks[1].offset) + 12;  // inside the second member
  auto read = layer->read(*big, 1000, 10, clock_.context());
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.error().code, ErrorCode::kDigestMismatch) << read.error().message;
  EXPECT_EQ(layer->stats().chunk_failures, 2);  // fetched once more, wrong again
  // Chunks the alteration did not touch read as ever.
  EXPECT_EQ(layer->read(*big, 0, 10, clock_.context()).value(), EstargzSample::big().substr(0, 10));
}

TEST_F(LazyLayerTest, AReopenedLayerReadsWhatWasFetchedWithoutTheNetwork) {
  {
    auto layer = open();
    ASSERT_NE(layer, nullptr);
    ASSERT_TRUE(layer->read(*layer->find("bin/big"), 0, 2500, clock_.context()).ok());
  }
  offline_ = true;
  requests_ = 0;
  auto layer = open();
  ASSERT_NE(layer, nullptr);
  EXPECT_EQ(layer->read(*layer->find("bin/big"), 0, 2500, clock_.context()).value(),
            EstargzSample::big());
  EXPECT_EQ(requests_, 0);
  // What was never fetched fails fast, naming the cause.
  auto hosts = layer->read(*layer->find("etc/hosts"), 0, 100, clock_.context());
  ASSERT_FALSE(hosts.ok());
  EXPECT_EQ(hosts.error().code, ErrorCode::kUnavailable);
}

TEST_F(LazyLayerTest, HeldBytesThatChangedOnDiskAreFetchedAgain) {
  uint64_t member = 0;
  {
    auto layer = open();
    ASSERT_NE(layer, nullptr);
    member = layer->find("bin/big")->chunks[2].offset;
    ASSERT_TRUE(layer->read(*layer->find("bin/big"), 0, 2500, clock_.context()).ok());
  }
  {
    std::fstream blob(dir_.path() / "cache" / "blob",
                      std::ios::in | std::ios::out | std::ios::binary);
    blob.seekp(static_cast<std::streamoff>(member + 15));
    blob.put('\x7f');
  }
  requests_ = 0;
  auto layer = open();
  ASSERT_NE(layer, nullptr);
  EXPECT_EQ(layer->read(*layer->find("bin/big"), 0, 2500, clock_.context()).value(),
            EstargzSample::big());
  EXPECT_EQ(requests_, 1);
  EXPECT_EQ(layer->stats().chunk_failures, 1);
}

// Eight readers of one chunk that is not held: one request, and one of them inflates and checks
// the chunk while the others wait for it (the kernel's readahead sends a big file's READs of one
// chunk at once).
TEST_F(LazyLayerTest, ReadersOfOneChunkShareOneFetchAndOneInflation) {
  auto layer = open();
  ASSERT_NE(layer, nullptr);
  const Entry* big = layer->find("bin/big");
  requests_ = 0;
  delay_ = std::chrono::milliseconds(100);
  std::vector<std::thread> readers;
  std::atomic<int> right{0};
  for (int i = 0; i < 8; ++i) {
    readers.emplace_back([&, i] {
      auto bytes = layer->read(*big, static_cast<uint64_t>(1000 + i * 10), 10, clock_.context());
      if (bytes.ok() &&
          *bytes == EstargzSample::big().substr(static_cast<size_t>(1000 + i * 10), 10))
        ++right;
    });
  }
  for (auto& reader : readers)
    reader.join();
  EXPECT_EQ(right, 8);
  EXPECT_EQ(requests_, 1);
  EXPECT_EQ(layer->stats().chunks_verified, 1);
}

TEST_F(LazyLayerTest, ThePrefetchBringsTheFilesBeforeTheLandmarkInOneRequest) {
  auto layer = open();
  ASSERT_NE(layer, nullptr);
  ASSERT_TRUE(layer->toc().prefetch_end.has_value());
  requests_ = 0;
  ASSERT_TRUE(layer->prefetch(clock_.context()).ok());
  EXPECT_EQ(requests_, 1);
  EXPECT_EQ(layer->read(*layer->find("etc/hosts"), 0, 100, clock_.context()).value(),
            "127.0.0.1 localhost\n");
  EXPECT_EQ(requests_, 1);
  // What it holds: the prefetched files and the TOC's member (verified when it was read).
  const uint64_t toc_offset =
      parseFooter(std::string_view(blob_).substr(blob_.size() - kFooterSize), blob_.size()).value();
  EXPECT_EQ(layer->bytesHeld(), static_cast<int64_t>(*layer->toc().prefetch_end + blob_.size() -
                                                     kFooterSize - toc_offset));
}

TEST_F(LazyLayerTest, ALayerIsReadInPlaceOnlyThroughTheTocItsDescriptorNames) {
  Descriptor unannotated = layer_;
  unannotated.annotations.clear();
  auto none = LazyLayer::open(unannotated, fetch(), dir_.path() / "a", clock_.context());
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().code, ErrorCode::kInvalidArgument);

  Descriptor other = layer_;
  other.annotations[std::string(kTocDigestAnnotation)] = Sha256::of("another TOC").str();
  auto wrong = LazyLayer::open(other, fetch(), dir_.path() / "b", clock_.context());
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.error().message.find("the manifest says"), std::string::npos)
      << wrong.error().message;
  // A TOC kept by an earlier open is verified again: the one the descriptor names wins.
  ASSERT_NE(open(), nullptr);
  std::filesystem::copy(dir_.path() / "cache", dir_.path() / "c");
  auto kept = LazyLayer::open(other, fetch(), dir_.path() / "c", clock_.context());
  ASSERT_FALSE(kept.ok());
  EXPECT_NE(kept.error().message.find("the manifest says"), std::string::npos)
      << kept.error().message;
}

TEST_F(LazyLayerTest, TheFillBringsWhatReadersLeftOutAndTheCopyIsTheBlob) {
  auto layer = open();
  ASSERT_NE(layer, nullptr);
  const Entry* big = layer->find("bin/big");
  ASSERT_NE(big, nullptr);
  ASSERT_TRUE(layer->read(*big, 1500, 10, clock_.context()).ok());  // the second chunk
  const int64_t held = layer->bytesHeld();
  EXPECT_FALSE(layer->complete());
  std::string copy;
  EXPECT_FALSE(layer->readBlob([&](std::string_view bytes) -> Status {
    copy += bytes;
    return {};
  }));

  int pieces = 0;
  ASSERT_TRUE(layer->fill(clock_.context(), 700, [&]() -> Status {
    ++pieces;
    return {};
  }));
  EXPECT_TRUE(layer->complete());
  EXPECT_EQ(layer->bytesHeld(), static_cast<int64_t>(blob_.size()));
  // Only the gaps were asked for, in pieces of at most 700 bytes.
  EXPECT_EQ(layer->stats().bytes_filled, static_cast<int64_t>(blob_.size()) - held);
  EXPECT_GE(pieces, static_cast<int>((blob_.size() - static_cast<size_t>(held)) / 700));
  ASSERT_TRUE(layer->readBlob([&](std::string_view bytes) -> Status {
    copy += bytes;
    return {};
  }));
  EXPECT_EQ(copy, blob_);

  // A fill of a complete copy asks nothing; a reopened one is complete from its record.
  const int before = requests_;
  ASSERT_TRUE(layer->fill(clock_.context()));
  EXPECT_EQ(requests_, before);
  layer.reset();
  offline_ = true;
  layer = open();
  ASSERT_NE(layer, nullptr);
  EXPECT_TRUE(layer->complete());
}

// The fill reads ahead of a reader going through the layer in order (kStreamReads reads in a
// row), from where its reads got to, each request ending where a member ends; never of a reader
// that stopped, nor over held bytes. (Reads out of order are megabytes apart: the sample is too
// small to show them.)
TEST_F(LazyLayerTest, TheFillReadsAheadOfAReaderGoingOnInOrder) {
  auto layer = open();
  ASSERT_NE(layer, nullptr);
  const Entry* big = layer->find("bin/big");
  ASSERT_NE(big, nullptr);
  ASSERT_EQ(big->chunks.size(), 3u);
  ASSERT_EQ(big->chunks[0].offset + layer->memberBytes(big->chunks[0]), big->chunks[1].offset);
  ASSERT_EQ(big->chunks[1].offset + layer->memberBytes(big->chunks[1]), big->chunks[2].offset);
  const auto fresh = std::chrono::seconds(60);
  EXPECT_FALSE(layer->fetchAhead(clock_.context(), 1 << 20, fresh).value());  // no reader yet
  ASSERT_TRUE(layer->read(*big, 0, 1, clock_.context()).ok());
  const int before = requests_;
  // Fewer reads than a stream takes (and fewer bytes): nothing is read ahead.
  for (int i = 1; i < LazyLayer::kStreamReads - 1; ++i)
    ASSERT_TRUE(layer->read(*big, static_cast<uint64_t>(i), 1, clock_.context()).ok());
  EXPECT_FALSE(layer->fetchAhead(clock_.context(), 1 << 20, fresh).value());
  EXPECT_EQ(requests_, before);
  ASSERT_TRUE(layer->read(*big, 20, 1, clock_.context()).ok());  // the kStreamReads-th in order
  EXPECT_EQ(requests_, before);                                  // the first chunk is held

  // Stale: a reader that stopped is not read ahead of.
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_FALSE(layer->fetchAhead(clock_.context(), 1 << 20, std::chrono::milliseconds(1)).value());
  EXPECT_EQ(requests_, before);

  // Going on: a piece a little longer than the second chunk's member ends where the third's
  // starts (not inside it), and the second chunk is then read from the copy.
  ASSERT_TRUE(layer->read(*big, 30, 1, clock_.context()).ok());
  int64_t held = layer->bytesHeld();
  const uint64_t second = layer->memberBytes(big->chunks[1]);
  ASSERT_TRUE(layer->fetchAhead(clock_.context(), second + 5, fresh).value());
  EXPECT_EQ(requests_, before + 1);
  EXPECT_EQ(layer->bytesHeld() - held, static_cast<int64_t>(second));
  EXPECT_EQ(layer->stats().bytes_filled, static_cast<int64_t>(second));
  // A member a little longer than the piece is taken whole, not cut.
  held = layer->bytesHeld();
  const uint64_t third = layer->memberBytes(big->chunks[2]);
  ASSERT_TRUE(layer->fetchAhead(clock_.context(), third - 3, fresh).value());
  EXPECT_EQ(requests_, before + 2);
  EXPECT_EQ(layer->bytesHeld() - held, static_cast<int64_t>(third));
  EXPECT_EQ(layer->read(*big, 0, 1 << 20, clock_.context()).value(), EstargzSample::big());
  EXPECT_EQ(requests_, before + 2);
  // The held TOC's member is skipped, and the footer after it fetched; then nothing is left
  // to read ahead of: no request.
  ASSERT_TRUE(layer->fetchAhead(clock_.context(), 1 << 20, fresh).value());
  EXPECT_EQ(layer->bytesHeld(), static_cast<int64_t>(blob_.size() - big->chunks[0].offset));
  EXPECT_FALSE(layer->fetchAhead(clock_.context(), 1 << 20, fresh).value());
  EXPECT_EQ(requests_, before + 3);
}

// A reader whose member's first bytes are on their way waits for them and then asks for the
// rest only: no byte is fetched twice.
TEST_F(LazyLayerTest, AReaderWaitsForAFetchUnderWayThatHasItsFirstBytes) {
  auto layer = open();
  ASSERT_NE(layer, nullptr);
  const Entry* big = layer->find("bin/big");
  ASSERT_NE(big, nullptr);
  const uint64_t member = big->chunks[0].offset;
  const uint64_t member_end = member + layer->memberBytes(big->chunks[0]);
  // One piece of the fill brings what is before the first chunk's member; the next starts at
  // the member and ends 10 bytes into it (far shorter than the member, so it is not taken
  // whole).
  int turns = 0;
  auto one_piece = [&]() -> Status {
    return ++turns == 1 ? Status{} : Status(makeError(ErrorCode::kCancelled, "one piece"));
  };
  EXPECT_FALSE(layer->fill(clock_.context(), member, one_piece));
  {
    std::lock_guard lock(ranges_mutex_);
    ranges_.clear();
  }
  delay_ = std::chrono::milliseconds(200);
  const int before = requests_;
  turns = 0;
  std::thread fill([&] { EXPECT_FALSE(layer->fill(clock_.context(), 10, one_piece)); });
  // The fill's request is under way (it counts as it starts) before the reader asks.
  while (requests_ == before)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  auto read = layer->read(*big, 0, 10, clock_.context());
  fill.join();
  ASSERT_TRUE(read.ok()) << read.error().message;
  EXPECT_EQ(*read, EstargzSample::big().substr(0, 10));
  std::lock_guard lock(ranges_mutex_);
  const std::vector<std::pair<int64_t, int64_t>> expected = {
      {static_cast<int64_t>(member), static_cast<int64_t>(member) + 10},
      {static_cast<int64_t>(member) + 10, static_cast<int64_t>(member_end)}};
  EXPECT_EQ(ranges_, expected);
}

TEST_F(LazyLayerTest, AFillEndsAtTheFirstFailureAndACopyProvedWrongStartsOver) {
  auto layer = open();
  ASSERT_NE(layer, nullptr);
  // The caller's turn between pieces decides: its error ends the fill before the request.
  const int before = requests_;
  auto refused = layer->fill(clock_.context(), LazyLayer::kFillPieceBytes,
                             [] { return Status(makeError(ErrorCode::kCancelled, "stopping")); });
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, ErrorCode::kCancelled);
  EXPECT_EQ(requests_, before);
  offline_ = true;
  auto offline = layer->fill(clock_.context());
  ASSERT_FALSE(offline.ok());
  EXPECT_EQ(offline.error().code, ErrorCode::kUnavailable);

  // Wrong bytes fill the copy (the fill does not verify; the whole blob's digest will not
  // match): once discarded, nothing is held, and the next fill fetches every byte again.
  offline_ = false;
  tamper_ = 100;
  ASSERT_TRUE(layer->fill(clock_.context()));
  std::string copy;
  ASSERT_TRUE(layer->readBlob([&](std::string_view bytes) -> Status {
    copy += bytes;
    return {};
  }));
  EXPECT_NE(copy, blob_);
  layer->discard();
  EXPECT_EQ(layer->bytesHeld(), 0);
  EXPECT_FALSE(layer->complete());
  tamper_ = -1;
  ASSERT_TRUE(layer->fill(clock_.context()));
  copy.clear();
  ASSERT_TRUE(layer->readBlob([&](std::string_view bytes) -> Status {
    copy += bytes;
    return {};
  }));
  EXPECT_EQ(copy, blob_);
  // Files read right after a discard are verified as ever.
  EXPECT_EQ(layer->read(*layer->find("bin/big"), 0, 1 << 20, clock_.context()).value(),
            EstargzSample::big());
}

}  // namespace
}  // namespace pullagent::puller::estargz
