#include "puller/registry/blob_ranges.h"

#include <gtest/gtest.h>

#include <charconv>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <optional>

#include "puller/oci/sha256.h"
#include "puller/registry/registry_client.h"
#include "tests/support/fake_clock.h"
#include "tests/support/fixed_random.h"
#include "tests/support/scripted_http.h"
#include "tests/support/temp_dir.h"

namespace pullagent::puller {
namespace {

TEST(BlobParts, EqualPartsCoverTheRestExactly) {
  BlobParts parts(1000, 1000 + 4 * 100 + 3, RangeSettings{4, 100});
  ASSERT_EQ(parts.parts().size(), 4u);
  EXPECT_EQ(parts.parts()[0].begin, 1000);
  EXPECT_EQ(parts.parts()[0].end, 1101);  // the remainder, a byte each over the first parts
  EXPECT_EQ(parts.parts()[2].end, 1303);
  EXPECT_EQ(parts.parts()[3].begin, 1303);
  EXPECT_EQ(parts.parts()[3].end, 1403);
  EXPECT_EQ(parts.parts()[1].rangeHeader(), "bytes=1101-1201");
}

TEST(BlobParts, NoPartIsSmallerThanTheMinimum) {
  EXPECT_EQ(BlobParts(0, 399, RangeSettings{4, 100}).parts().size(), 3u);
  EXPECT_EQ(BlobParts(0, 199, RangeSettings{4, 100}).parts().size(), 1u);
  EXPECT_FALSE(BlobParts(0, 199, RangeSettings{4, 100}).ranged());
  EXPECT_EQ(BlobParts(0, 100000, RangeSettings{1, 100}).parts().size(), 1u);
}

TEST(BlobParts, OnlyBytesWithoutAGapFromTheStartAreContiguous) {
  BlobParts parts(0, 400, RangeSettings{4, 100});
  parts.parts()[1].received = 100;
  parts.parts()[2].received = 40;
  EXPECT_EQ(parts.contiguousEnd(), 0);
  parts.parts()[0].received = 100;
  EXPECT_EQ(parts.contiguousEnd(), 240);
  EXPECT_EQ(parts.received(), 240);
  EXPECT_EQ(parts.parts()[2].rangeHeader(), "bytes=240-299");
  parts.collapse(2);
  EXPECT_EQ(parts.parts().size(), 3u);
  EXPECT_EQ(parts.parts()[2].end, 400);
}

TEST(CheckPartRange, TheAnswerMustBeTheRangeAskedForOrLess) {
  EXPECT_EQ(checkPartRange("bytes 100-199/1000", 100, 199, 1000).value(), 199);
  EXPECT_EQ(checkPartRange("bytes 100-149/*", 100, 199, 1000).value(), 149);
  for (const char* wrong :
       {"bytes 101-199/1000", "bytes 100-200/1000", "bytes 100-199/1001", "bytes 100-99/1000",
        "bytes 100-199", "items 100-199/1000", "bytes 100-1x9/1000", "bytes -100-199/1000"}) {
    auto checked = checkPartRange(std::string(wrong), 100, 199, 1000);
    ASSERT_FALSE(checked.ok()) << wrong;
    EXPECT_EQ(checked.error().code, ErrorCode::kProtocol) << wrong;
  }
  EXPECT_FALSE(checkPartRange(std::nullopt, 100, 199, 1000).ok());
}

// A registry that serves one blob and honours Range, with faults by the start of the range
// asked for. Thread-safe: ranges are asked side by side.
class RangeServer final : public HttpClient {
 public:
  struct Fault {
    int status = 0;                   // answer this instead (no body)
    std::optional<size_t> cut_after;  // bytes of the body sent before the connection drops
    bool ignore_range = false;        // 200 and the whole blob
    std::string content_range;        // this Content-Range instead of the true one
    int extra_bytes = 0;              // more body than the Content-Range says

    static Fault failing(int status) {
      Fault fault;
      fault.status = status;
      return fault;
    }
    static Fault cut(size_t after) {
      Fault fault;
      fault.cut_after = after;
      return fault;
    }
    static Fault wholeBlob() {
      Fault fault;
      fault.ignore_range = true;
      return fault;
    }
    static Fault contentRange(std::string value) {
      Fault fault;
      fault.content_range = std::move(value);
      return fault;
    }
    static Fault extra(int bytes) {
      Fault fault;
      fault.extra_bytes = bytes;
      return fault;
    }
  };
  using F = Fault;

  explicit RangeServer(std::string blob) : blob_(std::move(blob)) {}
  // The next request whose range starts at `start` gets `fault` (once).
  void fault(int64_t start, Fault fault) {
    std::lock_guard lock(mutex_);
    faults_[start] = fault;
  }
  std::vector<std::string> ranges() const {
    std::lock_guard lock(mutex_);
    return ranges_;
  }

  Result<HttpResponse> send(const HttpRequest& request, const Context& ctx) override {
    std::string range;
    for (const auto& header : request.headers) {
      if (header.name == "Range")
        range = header.value;
    }
    int64_t first = 0;
    int64_t last = static_cast<int64_t>(blob_.size()) - 1;
    std::optional<Fault> fault;
    {
      std::lock_guard lock(mutex_);
      ranges_.push_back(range);
      if (!range.empty()) {
        const std::string_view spec = std::string_view(range).substr(6);
        const auto dash = spec.find('-');
        std::from_chars(spec.data(), spec.data() + dash, first);
        if (dash + 1 < spec.size())
          std::from_chars(spec.data() + dash + 1, spec.data() + spec.size(), last);
      }
      if (auto it = faults_.find(first); it != faults_.end()) {
        fault = it->second;
        faults_.erase(it);
      }
    }
    HttpResponse response;
    if (fault && fault->status != 0) {
      response.status = fault->status;
      return response;
    }
    const bool ranged = !range.empty() && !(fault && fault->ignore_range);
    if (!ranged) {
      first = 0;
      last = static_cast<int64_t>(blob_.size()) - 1;
    }
    response.status = ranged ? 206 : 200;
    if (ranged) {
      const std::string content_range = fault && !fault->content_range.empty()
                                            ? fault->content_range
                                            : "bytes " + std::to_string(first) + "-" +
                                                  std::to_string(last) + "/" +
                                                  std::to_string(blob_.size());
      response.headers.push_back({"Content-Range", content_range});
    }
    if (auto status = request.on_head(response); !status)
      return status.error();
    std::string body =
        blob_.substr(static_cast<size_t>(first), static_cast<size_t>(last - first + 1));
    if (fault && fault->extra_bytes > 0)
      body += std::string(static_cast<size_t>(fault->extra_bytes), 'x');
    if (fault && fault->cut_after)
      body.resize(*fault->cut_after);
    for (size_t at = 0; at < body.size(); at += 1000) {
      RETURN_IF_ERROR(ctx.check());
      if (auto written = request.on_body(std::string_view(body).substr(at, 1000)); !written)
        return written.error();
    }
    if (fault && fault->cut_after)
      return makeError(ErrorCode::kUnavailable, "connection reset by peer");
    return response;
  }

 private:
  std::string blob_;
  mutable std::mutex mutex_;
  std::map<int64_t, Fault> faults_;
  std::vector<std::string> ranges_;
};

class BlobRangesTest : public ::testing::Test {
 protected:
  BlobRangesTest() : content_(makeContent(40000)), server_(content_) {
    auto store = ContentStore::open(dir_.path() / "content");
    EXPECT_TRUE(store.ok());
    store_ = std::move(store.value());
    policy_.initial_backoff = std::chrono::milliseconds(100);
  }
  static std::string makeContent(size_t size) {
    std::string out(size, '\0');
    for (size_t i = 0; i < size; ++i)
      out[i] = static_cast<char>((i * 131 + i / 977) % 251);
    return out;
  }
  Descriptor blob() const {
    return Descriptor{"application/vnd.oci.image.layer.v1.tar+gzip",
                      Sha256::of(content_),
                      static_cast<int64_t>(content_.size()),
                      std::nullopt,
                      {},
                      {}};
  }
  Status fetch() {
    RegistryClient registry(server_, authorizer_, clock_, random_, policy_,
                            {"https", "reg.io", "app"});
    registry.setRanges(RangeSettings{4, 10000});  // four parts of 10000 bytes
    return registry.fetchBlob(blob(), *store_, nullptr, clock_.context());
  }
  std::vector<std::string> sortedRanges() const {
    auto ranges = server_.ranges();
    std::sort(ranges.begin(), ranges.end());
    return ranges;
  }
  void expectStored() {
    ASSERT_TRUE(store_->contains(blob().digest, blob().size));
    EXPECT_EQ(testing::readFile(store_->blobPath(blob().digest)), content_);
  }

  testing::TempDir dir_;
  std::string content_;
  RangeServer server_;
  testing::FakeClock clock_;
  testing::FixedRandom random_{0.5};
  TokenCache tokens_{clock_};
  Authorizer authorizer_{server_, clock_, tokens_, RegistryCredentials{}, false};
  RetryPolicy policy_;
  std::unique_ptr<ContentStore> store_;
};

TEST_F(BlobRangesTest, ALargeBlobComesInRangesSideBySideAndVerifies) {
  auto status = fetch();
  ASSERT_TRUE(status.ok()) << status.error().message;
  expectStored();
  EXPECT_EQ(sortedRanges(), (std::vector<std::string>{"bytes=0-9999", "bytes=10000-19999",
                                                      "bytes=20000-29999", "bytes=30000-39999"}));
  EXPECT_EQ(server_.ranges().front(), "bytes=0-9999");  // the probe asks first
}

TEST_F(BlobRangesTest, AServerThatIgnoresRangeIsReadAsOneStreamAskedOnce) {
  server_.fault(0, RangeServer::F::wholeBlob());
  auto status = fetch();
  ASSERT_TRUE(status.ok()) << status.error().message;
  expectStored();
  EXPECT_EQ(server_.ranges(), std::vector<std::string>{"bytes=0-9999"});
}

TEST_F(BlobRangesTest, AServerThatIgnoresRangeAndDropsTheStreamIsReadOnFromWhereItStopped) {
  RangeServer::Fault cut = RangeServer::F::wholeBlob();
  cut.cut_after = 15000;
  server_.fault(0, cut);
  server_.fault(15000, RangeServer::F::wholeBlob());
  auto status = fetch();
  ASSERT_TRUE(status.ok()) << status.error().message;
  expectStored();
  EXPECT_EQ(server_.ranges(), (std::vector<std::string>{"bytes=0-9999", "bytes=15000-39999"}));
}

TEST_F(BlobRangesTest, ACutRangeIsAskedAgainForItsRestAlone) {
  server_.fault(20000, RangeServer::F::cut(3000));
  auto status = fetch();
  ASSERT_TRUE(status.ok()) << status.error().message;
  expectStored();
  EXPECT_EQ(sortedRanges(),
            (std::vector<std::string>{"bytes=0-9999", "bytes=10000-19999", "bytes=20000-29999",
                                      "bytes=23000-29999", "bytes=30000-39999"}));
  EXPECT_TRUE(clock_.sleeps().empty());  // asked again at once: it was making progress
}

TEST_F(BlobRangesTest, ARangeThatFailsLeavesTheOthersAndTheRetryAsksForItAlone) {
  server_.fault(10000, RangeServer::F::failing(503));
  auto status = fetch();
  ASSERT_TRUE(status.ok()) << status.error().message;
  expectStored();
  EXPECT_EQ(sortedRanges(),
            (std::vector<std::string>{"bytes=0-9999", "bytes=10000-19999", "bytes=10000-19999",
                                      "bytes=20000-29999", "bytes=30000-39999"}));
  EXPECT_EQ(clock_.sleeps().size(), 1u);  // the pull's backoff, once
}

TEST_F(BlobRangesTest, AWrongContentRangeEndsTheDownloadAndLeavesOnlyAPrefix) {
  server_.fault(30000, RangeServer::F::contentRange("bytes 30001-39999/40000"));
  auto status = fetch();
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code, ErrorCode::kProtocol) << status.error().message;
  EXPECT_FALSE(store_->contains(blob().digest, blob().size));
  // What stays for a resume is a prefix of the blob, never bytes written ahead.
  const auto ingest = store_->ingestPath(blob().digest, "reg.io/app");
  if (std::filesystem::exists(ingest)) {
    const std::string kept = testing::readFile(ingest);
    EXPECT_EQ(kept, content_.substr(0, kept.size()));
  }
  EXPECT_FALSE(std::filesystem::exists(ingest.string() + ".prefix"));
}

TEST_F(BlobRangesTest, MoreBytesThanTheRangeAskedForAreRefused) {
  server_.fault(20000, RangeServer::F::extra(10));
  auto status = fetch();
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code, ErrorCode::kProtocol) << status.error().message;
  EXPECT_FALSE(store_->contains(blob().digest, blob().size));
}

TEST_F(BlobRangesTest, ABlobUnderTwoPartsIsOneStream) {
  content_ = makeContent(19999);
  RangeServer small(content_);
  Authorizer authorizer{small, clock_, tokens_, RegistryCredentials{}, false};
  RegistryClient registry(small, authorizer, clock_, random_, policy_, {"https", "reg.io", "app"});
  registry.setRanges(RangeSettings{4, 10000});
  auto status = registry.fetchBlob(blob(), *store_, nullptr, clock_.context());
  ASSERT_TRUE(status.ok()) << status.error().message;
  expectStored();
  EXPECT_EQ(small.ranges(), std::vector<std::string>{""});
}

// A process killed while ranges were written ahead left them, with holes, past the prefix its
// record names: a resume keeps the recorded prefix only.
TEST_F(BlobRangesTest, AResumeAfterAKilledDownloadKeepsOnlyTheRecordedPrefix) {
  const auto ingest_path = store_->ingestPath(blob().digest, "reg.io/app");
  std::filesystem::create_directories(ingest_path.parent_path());
  {
    std::ofstream file(ingest_path, std::ios::binary);
    file << content_.substr(0, 12000) << std::string(8000, '\0') << content_.substr(20000, 5000);
    std::ofstream record(ingest_path.string() + ".prefix", std::ios::binary);
    record << "00000000000000012000";
  }
  RegistryClient registry(server_, authorizer_, clock_, random_, policy_,
                          {"https", "reg.io", "app"});
  auto status = registry.fetchBlob(blob(), *store_, nullptr, clock_.context());
  ASSERT_TRUE(status.ok()) << status.error().message;
  expectStored();
  EXPECT_EQ(server_.ranges(), std::vector<std::string>{"bytes=12000-"});
  EXPECT_FALSE(std::filesystem::exists(ingest_path.string() + ".prefix"));
}

}  // namespace
}  // namespace pullagent::puller
