#include "base/bounded_read.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/atomic_file.h"
#include "tests/support/temp_dir.h"

namespace pullagent {
namespace {

using testing::TempDir;
using testing::writeFile;

TEST(ReadRegularFile, ReadsSmallFilesAndRefusesLargeOnes) {
  TempDir dir;
  writeFile(dir / "a", "hello");
  EXPECT_EQ(readRegularFile(dir / "a", 5).value(), "hello");
  auto big = readRegularFile(dir / "a", 4);
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.error().code, ErrorCode::kResourceExhausted);
  EXPECT_EQ(readRegularFile(dir / "missing", 10).error().code, ErrorCode::kNotFound);
}

TEST(ReadRegularFile, NeitherBlocksOnAFifoNorReadsADeviceForEver) {
  TempDir dir;
  ASSERT_EQ(::mkfifo((dir / "fifo").c_str(), 0600), 0);
  auto fifo = readRegularFile(dir / "fifo", 1 << 20);  // would block for ever without O_NONBLOCK
  ASSERT_FALSE(fifo.ok());
  EXPECT_EQ(fifo.error().code, ErrorCode::kInvalidArgument);
  ASSERT_EQ(::symlink("/dev/zero", (dir / "zero").c_str()), 0);
  EXPECT_FALSE(readRegularFile(dir / "zero", 1 << 20, Links::kFollow).ok());
  EXPECT_FALSE(readRegularFile(dir.path(), 1 << 20).ok());
}

TEST(ReadRegularFile, LinksAreFollowedOnlyWhenAsked) {
  TempDir dir;
  writeFile(dir / "target", "x");
  ASSERT_EQ(::symlink((dir / "target").c_str(), (dir / "link").c_str()), 0);
  EXPECT_EQ(readRegularFile(dir / "link", 10, Links::kFollow).value(), "x");
  auto refused = readRegularFile(dir / "link", 10);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, ErrorCode::kInvalidArgument);
}

TEST(WriteFileAtomic, APlantedLinkBesideTheFileIsNeverWrittenThrough) {
  TempDir dir;
  writeFile(dir / "canary", "untouched");
  // Every predictable temporary name an attacker might guess points at the canary.
  for (int n = 0; n < 16; ++n) {
    auto guess = (dir / "state.json").string() + ".tmp." + std::to_string(::getpid()) + "." +
                 std::to_string(n);
    ASSERT_EQ(::symlink((dir / "canary").c_str(), guess.c_str()), 0);
  }
  ASSERT_TRUE(writeFileAtomic(dir / "state.json", "{}").ok());
  EXPECT_EQ(testing::readFile(dir / "state.json"), "{}");
  EXPECT_EQ(testing::readFile(dir / "canary"), "untouched");
}

}  // namespace
}  // namespace pullagent
