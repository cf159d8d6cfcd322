#include "puller/lazy/lazy_records.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "puller/oci/sha256.h"
#include "tests/support/estargz_sample.h"
#include "tests/support/temp_dir.h"

namespace pullagent::puller {
namespace {

using nlohmann::json;
using testing::readFile;

LazyLayerRecord sampleRecord() {
  LazyLayerRecord record;
  record.libfuse = 314;
  record.source = {"registry.test", "team/app"};
  record.layer = testing::EstargzSample::descriptor();
  record.init = std::string("\x38\x00\x00\x00\x1a\x00\x00\x00", 8) + std::string(48, '\x01');
  record.connection = 47;
  return record;
}

TEST(LazyRecords, ALayerRecordReadsBackAsWritten) {
  testing::TempDir dir;
  ASSERT_TRUE(writeLayerRecord(dir.path(), sampleRecord()).ok());
  auto read = readLayerRecord(dir.path());
  ASSERT_TRUE(read.ok()) << read.error().message;
  EXPECT_EQ(read->format, LazyLayerRecord::kFormat);
  EXPECT_EQ(read->libfuse, 314);
  EXPECT_EQ(read->source, (BlobSource{"registry.test", "team/app"}));
  EXPECT_EQ(read->layer.digest, sampleRecord().layer.digest);
  EXPECT_EQ(read->layer.size, sampleRecord().layer.size);
  EXPECT_EQ(read->layer.annotations, sampleRecord().layer.annotations);
  EXPECT_EQ(read->init, sampleRecord().init);  // binary, through base64
  EXPECT_EQ(read->connection, 47u);
}

TEST(LazyRecords, ARecordOfAnEarlierFormatReadsAsFormatZeroAndABrokenOneIsAnError) {
  testing::TempDir dir;
  ASSERT_TRUE(writeLayerRecord(dir.path(), sampleRecord()).ok());
  auto doc = json::parse(readFile(dir.path() / "layer.json"));
  doc.erase("format");
  testing::writeFile(dir.path() / "layer.json", doc.dump());
  auto old = readLayerRecord(dir.path());
  ASSERT_TRUE(old.ok()) << old.error().message;
  EXPECT_EQ(old->format, 0);  // the host refuses to serve it on
  for (const auto& [key, value] : std::vector<std::pair<std::string, json>>{
           {"init", "not base64!"}, {"connection", 0}, {"layer", "sha256:nope"}}) {
    auto broken = json::parse(readFile(dir.path() / "layer.json"));
    broken[key] = value;
    testing::writeFile(dir.path() / "layer.json", broken.dump());
    EXPECT_FALSE(readLayerRecord(dir.path()).ok()) << key;
  }
}

TEST(LazyRecords, BundleRecordsReadBackAndOnesThatDoNotReadAreDropped) {
  testing::TempDir dir;
  LazyBundle bundle;
  bundle.dir = dir.path() / "images" / std::string(64, 'c');
  bundle.source = {"registry.test", "team/app"};
  bundle.layers = {testing::EstargzSample::descriptor()};
  bundle.diff_ids = {Digest::parse("sha256:" + std::string(64, 'd')).value()};
  bundle.served = {bundle.layers[0].digest};
  bundle.apply.privileged = true;
  const auto records = dir.path() / "bundles";
  ASSERT_TRUE(writeBundleRecord(records, bundle).ok());
  // A record whose name is not its bundle's hash, and one that is not JSON.
  const auto named = records / (Sha256::of(bundle.dir.string()).hex() + ".json");
  std::filesystem::copy_file(named, records / (std::string(64, 'e') + ".json"));
  testing::writeFile(records / (std::string(64, 'f') + ".json"), "{");
  const auto read = readBundleRecords(records);
  ASSERT_EQ(read.size(), 1u);
  EXPECT_EQ(read[0].dir, bundle.dir);
  EXPECT_EQ(read[0].source, bundle.source);
  EXPECT_EQ(read[0].layers.size(), 1u);
  EXPECT_EQ(read[0].diff_ids, bundle.diff_ids);
  EXPECT_EQ(read[0].served, bundle.served);
  EXPECT_TRUE(read[0].apply.privileged);
  EXPECT_FALSE(std::filesystem::exists(records / (std::string(64, 'e') + ".json")));
  EXPECT_FALSE(std::filesystem::exists(records / (std::string(64, 'f') + ".json")));
  removeBundleRecord(records, bundle.dir);
  EXPECT_TRUE(readBundleRecords(records).empty());
}

}  // namespace
}  // namespace pullagent::puller
