#include "puller/pipeline/pull_demand.h"

#include <gtest/gtest.h>

#include <limits>

#include "puller/oci/sha256.h"
#include "tests/support/temp_dir.h"

namespace pullagent::puller {
namespace {

using testing::TempDir;

Descriptor blob(const std::string& name, int64_t size) {
  return Descriptor{
      "application/vnd.oci.image.layer.v1.tar+gzip", Sha256::of(name), size, {}, {}, {}};
}

TEST(PullDemand, MissingBlobsAndLayersToUnpackEachCountedOnce) {
  TempDir dir{"pullagent-demand"};
  auto store = ContentStore::open(dir.path());
  ASSERT_TRUE(store.ok()) << store.error().message;
  const Descriptor config = blob("config", 500);
  const Descriptor base = blob("base", 1000);
  const Descriptor app = blob("app", 4000);
  // A layer listed twice (a hostile manifest's way to double its claim) counts once.
  auto demand =
      predictDemand(blob("manifest", 100), config, {base, app, app}, **store, nullptr, nullptr);
  EXPECT_EQ(demand.download_bytes, 500 + 1000 + 4000);
  EXPECT_EQ(demand.unpack_source_bytes, 1000 + 4000);
  EXPECT_EQ(demand.layers, 3u);
  EXPECT_EQ(demand.layers_to_download, 2u);
  EXPECT_EQ(demand.layers_to_unpack, 2u);
}

TEST(PullDemand, SizesAManifestClaimsNeverOverflow) {
  TempDir dir{"pullagent-demand"};
  auto store = ContentStore::open(dir.path());
  ASSERT_TRUE(store.ok());
  const int64_t huge = std::numeric_limits<int64_t>::max();
  auto demand =
      predictDemand(blob("manifest", 100), blob("config", huge),
                    {blob("a", huge), blob("b", huge), blob("c", -5)}, **store, nullptr, nullptr);
  EXPECT_EQ(demand.download_bytes, huge);
  EXPECT_EQ(demand.unpack_source_bytes, huge);
}

}  // namespace
}  // namespace pullagent::puller
