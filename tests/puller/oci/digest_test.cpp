#include "puller/oci/digest.h"

#include <gtest/gtest.h>

#include "puller/oci/pipelined_sha256.h"
#include "puller/oci/sha256.h"

#include <cstring>

namespace pullagent::puller {
namespace {

const std::string kHex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

TEST(Digest, AcceptsSha256WithLowercaseHex) {
  auto digest = Digest::parse("sha256:" + kHex);
  ASSERT_TRUE(digest.ok());
  EXPECT_EQ(digest->hex(), kHex);
  EXPECT_EQ(digest->str(), "sha256:" + kHex);
}

struct BadDigest {
  std::string text;
  ErrorCode code;
  friend void PrintTo(const BadDigest& c, std::ostream* out) { *out << '"' << c.text << '"'; }
};

class DigestRejects : public ::testing::TestWithParam<BadDigest> {};

TEST_P(DigestRejects, BeforeItBecomesAPathOrUrl) {
  auto digest = Digest::parse(GetParam().text);
  ASSERT_FALSE(digest.ok()) << GetParam().text;
  EXPECT_EQ(digest.error().code, GetParam().code) << digest.error().message;
}

INSTANTIATE_TEST_SUITE_P(
    Table, DigestRejects,
    ::testing::Values(BadDigest{"sha256:../../etc/passwd", ErrorCode::kInvalidArgument},
                      BadDigest{"sha256:" + std::string(64, 'A'), ErrorCode::kInvalidArgument},
                      BadDigest{"sha256:" + kHex.substr(1), ErrorCode::kInvalidArgument},
                      BadDigest{"sha256:" + kHex + "0", ErrorCode::kInvalidArgument},
                      BadDigest{kHex, ErrorCode::kInvalidArgument},
                      BadDigest{"SHA256:" + kHex, ErrorCode::kInvalidArgument},
                      BadDigest{"sha512:" + kHex + kHex, ErrorCode::kUnsupported},
                      BadDigest{"sha256:" + kHex.substr(0, 63) + "/", ErrorCode::kInvalidArgument},
                      BadDigest{"", ErrorCode::kInvalidArgument},
                      BadDigest{":" + kHex, ErrorCode::kInvalidArgument}));

TEST(Sha256, HashesIncrementally) {
  EXPECT_EQ(Sha256::of("").hex(), kHex);
  Sha256 hasher;
  hasher.update("hello ");
  hasher.update("world");
  EXPECT_EQ(hasher.finish().hex(),
            "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9");
}

}  // namespace
}  // namespace pullagent::puller

namespace pullagent::puller {
namespace {

TEST(PipelinedSha256, EqualsTheSequentialHashAcrossManyBuffers) {
  std::string data;
  for (int i = 0; i < 200000; ++i)
    data += static_cast<char>((i * 7919) % 251);
  PipelinedSha256 hasher(3, 4096);
  size_t offset = 0;
  while (offset < data.size()) {
    char* buffer = hasher.acquire();
    size_t n = std::min<size_t>(hasher.bufferSize() - (offset % 5), data.size() - offset);
    std::memcpy(buffer, data.data() + offset, n);
    hasher.submit(n);
    offset += n;
  }
  EXPECT_EQ(hasher.finish(), Sha256::of(data));
}

}  // namespace
}  // namespace pullagent::puller
