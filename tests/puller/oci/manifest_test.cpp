#include "puller/oci/manifest.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace pullagent::puller {
namespace {

using nlohmann::json;

std::string hexOf(char c) {
  return std::string(64, c);
}
std::string digestOf(char c) {
  return "sha256:" + hexOf(c);
}

json layer(char c, const char* type = "application/vnd.oci.image.layer.v1.tar+gzip") {
  return {{"mediaType", type}, {"digest", digestOf(c)}, {"size", 10}};
}

json ociManifest() {
  return {
      {"schemaVersion", 2},
      {"mediaType", media_type::kOciManifest},
      {"config", {{"mediaType", media_type::kOciConfig}, {"digest", digestOf('c')}, {"size", 100}}},
      {"layers", {layer('a'), layer('b')}}};
}

json entry(char c, const std::string& os, const std::string& arch, const std::string& variant = "",
           json annotations = nullptr) {
  json e = {{"mediaType", media_type::kOciManifest}, {"digest", digestOf(c)}, {"size", 500}};
  e["platform"] = {{"os", os}, {"architecture", arch}};
  if (!variant.empty())
    e["platform"]["variant"] = variant;
  if (!annotations.is_null())
    e["annotations"] = annotations;
  return e;
}

ImageIndex indexOf(std::vector<json> entries) {
  json doc = {{"schemaVersion", 2}, {"mediaType", media_type::kOciIndex}, {"manifests", entries}};
  auto parsed = parseManifest(doc.dump(), media_type::kOciIndex);
  EXPECT_TRUE(parsed.ok()) << parsed.error().message;
  return std::get<ImageIndex>(parsed.value());
}

TEST(Manifest, ParsesOciManifest) {
  auto parsed = parseManifest(ociManifest().dump(),
                              std::string(media_type::kOciManifest) + "; charset=utf-8");
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  auto& m = std::get<ImageManifest>(parsed.value());
  EXPECT_EQ(m.config.digest.str(), digestOf('c'));
  ASSERT_EQ(m.layers.size(), 2u);
  EXPECT_EQ(m.layers[1].digest.str(), digestOf('b'));
}

TEST(Manifest, ParsesDockerSchema2) {
  json doc = ociManifest();
  doc["mediaType"] = media_type::kDockerManifest;
  doc["config"]["mediaType"] = media_type::kDockerConfig;
  // json::array: a braced single json is a copy under clang, a one-element array under gcc.
  doc["layers"] = json::array({layer('a', "application/vnd.docker.image.rootfs.diff.tar.gzip")});
  auto parsed = parseManifest(doc.dump(), media_type::kDockerManifest);
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  EXPECT_EQ(std::get<ImageManifest>(parsed.value()).media_type, media_type::kDockerManifest);
}

TEST(Manifest, MediaTypeMayBeAbsentInOci) {
  json doc = ociManifest();
  doc.erase("mediaType");
  auto parsed = parseManifest(doc.dump(), media_type::kOciManifest);
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
}

struct Rejection {
  std::string name;
  std::function<void(json&)> mutate;
  std::string content_type;
  ErrorCode code;
  friend void PrintTo(const Rejection& c, std::ostream* out) { *out << c.name; }
};

class ManifestRejects : public ::testing::TestWithParam<Rejection> {};

TEST_P(ManifestRejects, WithAClearError) {
  json doc = ociManifest();
  GetParam().mutate(doc);
  auto parsed = parseManifest(doc.dump(), GetParam().content_type);
  ASSERT_FALSE(parsed.ok()) << GetParam().name;
  EXPECT_EQ(parsed.error().code, GetParam().code) << parsed.error().message;
}

INSTANTIATE_TEST_SUITE_P(
    Table, ManifestRejects,
    ::testing::Values(
        Rejection{"schema1",
                  [](json& d) {
                    d = {{"schemaVersion", 1}, {"name", "x"}};
                  },
                  "application/vnd.docker.distribution.manifest.v1+prettyjws",
                  ErrorCode::kUnsupported},
        Rejection{"schema1 in body", [](json& d) { d["schemaVersion"] = 1; }, "application/json",
                  ErrorCode::kUnsupported},
        Rejection{"both index and manifest", [](json& d) { d["manifests"] = json::array(); },
                  std::string(media_type::kOciManifest), ErrorCode::kProtocol},
        Rejection{"mediaType contradicts Content-Type", [](json&) {},
                  std::string(media_type::kDockerManifest), ErrorCode::kProtocol},
        Rejection{"unknown type", [](json& d) { d["mediaType"] = "application/vnd.example+json"; },
                  "application/vnd.example+json", ErrorCode::kUnsupported},
        Rejection{"bad layer digest",
                  [](json& d) { d["layers"][0]["digest"] = "sha256:../../etc"; },
                  std::string(media_type::kOciManifest), ErrorCode::kProtocol},
        Rejection{"negative size", [](json& d) { d["layers"][0]["size"] = -1; },
                  std::string(media_type::kOciManifest), ErrorCode::kProtocol},
        Rejection{"not a layer",
                  [](json& d) { d["layers"][0]["mediaType"] = "application/vnd.in-toto+json"; },
                  std::string(media_type::kOciManifest), ErrorCode::kUnsupported},
        Rejection{"encrypted layer",
                  [](json& d) {
                    d["layers"][0]["mediaType"] =
                        "application/vnd.oci.image.layer.v1.tar+gzip+encrypted";
                  },
                  std::string(media_type::kOciManifest), ErrorCode::kUnsupported},
        Rejection{"huge config", [](json& d) { d["config"]["size"] = 5 * 1024 * 1024; },
                  std::string(media_type::kOciManifest), ErrorCode::kResourceExhausted},
        Rejection{"not json", [](json& d) { d = "just a string"; },
                  std::string(media_type::kOciManifest), ErrorCode::kProtocol}),
    [](const auto& test_info) {
      std::string name = test_info.param.name;
      for (auto& c : name) {
        if (!std::isalnum(static_cast<unsigned char>(c)))
          c = '_';
      }
      return name;
    });

TEST(PlatformSelection, DefaultAmd64SkipsAttestationsAndOtherArchs) {
  auto index = indexOf({entry('1', "linux", "arm64", "v8"),
                        entry('2', "unknown", "unknown", "",
                              {{"vnd.docker.reference.type", "attestation-manifest"}}),
                        entry('3', "linux", "amd64"), entry('4', "linux", "amd64")});
  auto selected = selectPlatform(index, Platform{"linux", "amd64", "", ""});
  ASSERT_TRUE(selected.ok()) << selected.error().message;
  EXPECT_EQ(selected->digest.str(), digestOf('3'));  // the first match wins
}

TEST(PlatformSelection, NormalisesArchitectureNames) {
  auto index = indexOf({entry('1', "linux", "aarch64"), entry('2', "linux", "x86_64")});
  EXPECT_EQ(selectPlatform(index, Platform{"linux", "arm64", "v8", ""})->digest.str(),
            digestOf('1'));
  EXPECT_EQ(selectPlatform(index, Platform{"linux", "amd64", "", ""})->digest.str(), digestOf('2'));
}

TEST(PlatformSelection, VariantsHonouredWithFallbackToLowerOnes) {
  auto index = indexOf({entry('1', "linux", "arm", "v6"), entry('2', "linux", "arm", "v7"),
                        entry('3', "linux", "amd64", "v2"), entry('4', "linux", "amd64")});
  EXPECT_EQ(selectPlatform(index, Platform{"linux", "arm", "v7", ""})->digest.str(), digestOf('2'));
  EXPECT_EQ(selectPlatform(index, Platform{"linux", "arm", "", ""})->digest.str(), digestOf('2'));
  EXPECT_EQ(selectPlatform(index, Platform{"linux", "arm", "v6", ""})->digest.str(), digestOf('1'));
  EXPECT_EQ(selectPlatform(index, Platform{"linux", "amd64", "v3", ""})->digest.str(),
            digestOf('3'));
  EXPECT_EQ(selectPlatform(index, Platform{"linux", "amd64", "", ""})->digest.str(), digestOf('4'));
}

TEST(PlatformSelection, NoMatchListsWhatIsAvailable) {
  auto index = indexOf({entry('1', "linux", "arm64"), entry('2', "windows", "amd64")});
  auto selected = selectPlatform(index, Platform{"linux", "amd64", "", ""});
  ASSERT_FALSE(selected.ok());
  EXPECT_EQ(selected.error().code, ErrorCode::kNotFound);
  EXPECT_NE(selected.error().message.find("linux/arm64, windows/amd64"), std::string::npos)
      << selected.error().message;
}

TEST(PlatformSelection, NeverPicksAnAttestation) {
  auto index = indexOf({entry('2', "unknown", "unknown")});
  EXPECT_FALSE(selectPlatform(index, Platform{"linux", "amd64", "", ""}).ok());
}

TEST(PlatformParse, AcceptsTwoOrThreeParts) {
  EXPECT_EQ(Platform::parse("linux/arm/v7")->variant, "v7");
  EXPECT_FALSE(Platform::parse("linux").ok());
  EXPECT_FALSE(Platform::parse("linux/amd64/v2/x").ok());
  EXPECT_FALSE(Platform::parse("/amd64").ok());
}

TEST(ImageConfig, ReadsDiffIds) {
  json config = {{"os", "linux"},
                 {"architecture", "amd64"},
                 {"rootfs", {{"type", "layers"}, {"diff_ids", {digestOf('a'), digestOf('b')}}}}};
  auto summary = parseImageConfig(config.dump());
  ASSERT_TRUE(summary.ok());
  EXPECT_EQ(summary->diff_ids.size(), 2u);
  config["rootfs"]["diff_ids"][1] = "sha256:bad";
  EXPECT_FALSE(parseImageConfig(config.dump()).ok());
  EXPECT_FALSE(parseImageConfig("{}").ok());
}

}  // namespace
}  // namespace pullagent::puller
