// Shared bytes only with proof, against the real registries: a tenant who knows another
// tenant's digests (a manifest naming them, a config listing their diff_ids) gets none of their
// bytes, in any storage mode and with any command; a tenant whose own registry holds the same
// blobs still shares them, at the cost the README states. Each case checks what the second
// registry was asked through its recording proxy.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <set>

#include "puller/oci/sha256.h"
#include "tests/integration/pull_fixture.h"

namespace pullagent::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// What every failure to get a blob from the pull's own registry says.
constexpr const char* kRule =
    "a blob is used only once the pull's own registry serves it or shows it holds it";

class SharedBytes : public PullTest {
 protected:
  const json& privateImage() { return stack().info()["private_image"]; }
  std::string privateDigest() { return privateImage()["digest"]; }
  std::string configDigest() { return privateImage()["config"]; }
  std::string layerDigest(size_t i) { return privateImage()["layers"][i]["digest"]; }
  std::string aliceTokenCreds() {
    return stack().info()["token_owner"].get<std::string>() + ":" +
           stack().info()["token_owner_password"].get<std::string>();
  }

  // pullagent pull IMAGE --state <state> --ca <CA> ARGS...
  ProcessResult pullState(const std::string& image, const std::vector<std::string>& extra) {
    std::vector<std::string> command{PULLAGENT_BINARY, "pull", image,       "--state",
                                     state_.string(),  "--ca", stack().ca()};
    command.insert(command.end(), extra.begin(), extra.end());
    return runProcess(command);
  }
  // Site A: the private image from the Basic registry, with its owner's credentials.
  void ownerPulls(const std::vector<std::string>& extra) {
    std::vector<std::string> args{"--creds", basicCreds()};
    args.insert(args.end(), extra.begin(), extra.end());
    auto owner = pullState(stack().registry("basic") + "/alice/private:v1", args);
    ASSERT_EQ(owner.exit_code, 0) << owner.all();
  }
  // `server` answers GET/HEAD of `path` with `body` itself, whatever its registry holds: a
  // tenant's own registry serving what it likes.
  static json serve(const std::string& path, const std::string& body,
                    const std::string& content_type) {
    return {{"match", path},
            {"times", 1000},
            {"action", "respond"},
            {"body", body},
            {"headers", {{"Content-Type", content_type}}}};
  }
  std::vector<json> blobRequests(const std::string& server, const std::string& repository,
                                 const std::string& method) {
    std::vector<json> matching;
    for (const auto& request : requests(server, "/v2/" + repository + "/blobs/")) {
      if (request["method"] == method)
        matching.push_back(request);
    }
    return matching;
  }
  bool root() const { return ::geteuid() == 0; }
  // The published image directories of the state dir.
  std::set<std::string> imageDirs() {
    std::set<std::string> names;
    if (fs::exists(state_ / "images")) {
      for (const auto& entry : fs::directory_iterator(state_ / "images")) {
        const auto name = entry.path().filename().string();
        if (!name.starts_with("."))
          names.insert(name);
      }
    }
    return names;
  }

  // B's anonymous registry serves the owner's manifest as bob/steal:v1 and 404s every blob
  // (it holds none of them): B's pull must fail, naming a blob, and ask the registry for the
  // bytes it claims (GET, not a mere HEAD).
  void expectTheftFails(const std::vector<std::string>& extra) {
    const std::string hostile = stack().proxy("proxy_anon");
    stack().setFaults(
        hostile, json::array({serve("/v2/bob/steal/manifests/v1", privateImage()["manifest_text"],
                                    privateImage()["media_type"])}));
    auto thief = pullState(hostile + "/bob/steal:v1", extra);
    EXPECT_NE(thief.exit_code, 0) << thief.all();
    EXPECT_NE(thief.err.find(kRule), std::string::npos) << thief.err;
    // The same words as for a blob the host does not hold: the error (what the site's status
    // shows) tells no tenant what others hold; only the host's own log says more.
    const std::string error =
        thief.err.substr(std::min(thief.err.find("pull failed"), thief.err.size()));
    EXPECT_EQ(error.find("on this host"), std::string::npos) << error;
    EXPECT_TRUE(thief.err.find(configDigest()) != std::string::npos ||
                thief.err.find(layerDigest(0)) != std::string::npos ||
                thief.err.find(layerDigest(1)) != std::string::npos)
        << thief.err;
    EXPECT_FALSE(blobRequests(hostile, "bob/steal", "GET").empty());
    EXPECT_EQ(thief.out.find("pulled"), std::string::npos) << thief.out;
  }

  fs::path state_ = dest_ / "state";
};

TEST_F(SharedBytes, AForeignManifestNamingStoredDigestsGetsNoBytesFromFlatStorage) {
  ownerPulls({"--storage", "flat"});
  expectTheftFails({"--storage", "flat"});
}

TEST_F(SharedBytes, AForeignManifestNamingStoredDigestsGetsNoBytesFromSnapshots) {
  if (!root())
    GTEST_SKIP() << "overlay snapshots need root";
  ownerPulls({"--storage", "overlay"});
  expectTheftFails({"--storage", "overlay"});
}

TEST_F(SharedBytes, AForeignManifestGetsNoBytesOnceTheLayerBlobsAreDiscarded) {
  if (!root())
    GTEST_SKIP() << "overlay snapshots need root";
  ownerPulls({"--storage", "overlay"});
  auto gc =
      runProcess({PULLAGENT_BINARY, "gc", "--state", state_.string(), "--discard-unpacked-layers"});
  ASSERT_EQ(gc.exit_code, 0) << gc.all();
  ASSERT_FALSE(fs::exists(state_ / "content/blobs/sha256" / layerDigest(1).substr(7)));
  expectTheftFails({"--storage", "overlay"});
}

TEST_F(SharedBytes, AForeignManifestGetsNoBytesIntoARootfsOfItsOwn) {
  const fs::path owner_root = dest_ / "owner-rootfs";
  const fs::path thief_root = dest_ / "thief-rootfs";
  ownerPulls({"--rootfs", owner_root.string()});
  ASSERT_TRUE(fs::exists(owner_root / "srv/secret.txt"));
  expectTheftFails({"--rootfs", thief_root.string()});
  EXPECT_FALSE(fs::exists(thief_root));
}

// B's own config lists A's diff_ids over layer digests that exist nowhere: the snapshots those
// diff_ids name are A's, but a config's claim selects none of them.
TEST_F(SharedBytes, ConfigDiffIdsAloneSelectNoSnapshot) {
  if (!root())
    GTEST_SKIP() << "overlay snapshots need root";
  ownerPulls({"--storage", "overlay"});
  auto owner_config =
      json::parse(readFile(state_ / "images" / privateDigest().substr(7) / "image-config.json"));
  const json diff_ids = owner_config["rootfs"]["diff_ids"];
  ASSERT_EQ(diff_ids.size(), 2u);

  const std::string config = json{{"architecture", "amd64"},
                                  {"os", "linux"},
                                  {"rootfs", {{"type", "layers"}, {"diff_ids", diff_ids}}}}
                                 .dump();
  const std::string config_digest = puller::Sha256::of(config).str();
  json layers = json::array();
  for (const char* seed : {"nowhere-1", "nowhere-2"}) {
    layers.push_back({{"mediaType", "application/vnd.oci.image.layer.v1.tar+gzip"},
                      {"digest", puller::Sha256::of(seed).str()},
                      {"size", 1234}});
  }
  const json manifest = {{"schemaVersion", 2},
                         {"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                         {"config",
                          {{"mediaType", "application/vnd.oci.image.config.v1+json"},
                           {"digest", config_digest},
                           {"size", config.size()}}},
                         {"layers", layers}};
  const std::string hostile = stack().proxy("proxy_anon");
  stack().setFaults(hostile, json::array({serve("/v2/bob/diffids/manifests/v1", manifest.dump(),
                                                "application/vnd.oci.image.manifest.v1+json"),
                                          serve("/v2/bob/diffids/blobs/" + config_digest, config,
                                                "application/octet-stream")}));
  const auto before = imageDirs();
  auto thief = pullState(hostile + "/bob/diffids:v1", {"--storage", "overlay"});
  EXPECT_NE(thief.exit_code, 0) << thief.all();
  EXPECT_NE(thief.err.find(layers[0]["digest"].get<std::string>()), std::string::npos) << thief.err;
  EXPECT_EQ(imageDirs(), before);
  // The layers were asked of B's registry, as for any blob the host does not hold.
  EXPECT_FALSE(blobRequests(hostile, "bob/diffids", "GET").empty());
}

// The same with A's layer digests and B's own config, once A's layer blobs are discarded: the
// snapshots are A's layers (the agent recorded that), but B's registry must serve the bytes.
TEST_F(SharedBytes, DiscardedLayersStillNeedTheirBytesFromTheRegistryOfThePull) {
  if (!root())
    GTEST_SKIP() << "overlay snapshots need root";
  ownerPulls({"--storage", "overlay"});
  ASSERT_EQ(
      runProcess({PULLAGENT_BINARY, "gc", "--state", state_.string(), "--discard-unpacked-layers"})
          .exit_code,
      0);
  auto owner_manifest = json::parse(privateImage()["manifest_text"].get<std::string>());
  auto owner_config =
      json::parse(readFile(state_ / "images" / privateDigest().substr(7) / "image-config.json"));
  const std::string config = json{
      {"architecture", "amd64"},
      {"os", "linux"},
      {"config", {{"Cmd", {"/bin/sh"}}}},
      {"rootfs",
       owner_config["rootfs"]}}.dump();
  owner_manifest["config"]["digest"] = puller::Sha256::of(config).str();
  owner_manifest["config"]["size"] = config.size();
  const std::string hostile = stack().proxy("proxy_anon");
  stack().setFaults(hostile,
                    json::array({serve("/v2/bob/layers/manifests/v1", owner_manifest.dump(),
                                       privateImage()["media_type"]),
                                 serve("/v2/bob/layers/blobs/" + puller::Sha256::of(config).str(),
                                       config, "application/octet-stream")}));
  const auto before = imageDirs();
  auto thief = pullState(hostile + "/bob/layers:v1", {"--storage", "overlay"});
  EXPECT_NE(thief.exit_code, 0) << thief.all();
  EXPECT_NE(thief.err.find(kRule), std::string::npos) << thief.err;
  EXPECT_EQ(imageDirs(), before);
  EXPECT_FALSE(blobRequests(hostile, "bob/layers", "GET").empty());
}

// One registry, two repositories with different owners: bob may not pull alice/app, and a
// manifest of his naming alice's digests needs the registry to link them into bob/app.
TEST_F(SharedBytes, AnotherRepositoryOfTheSameRegistryMustAnswerAHead) {
  const std::string registry = stack().proxy("proxy_token");
  auto alice =
      pullState(registry + "/alice/app:v1", {"--creds", aliceTokenCreds(), "--storage", "flat"});
  ASSERT_EQ(alice.exit_code, 0) << alice.all();
  auto refused =
      pullState(registry + "/alice/app:v1", {"--creds", tokenCreds(), "--storage", "flat"});
  EXPECT_NE(refused.exit_code, 0) << refused.all();

  stack().reset(registry);
  stack().setFaults(
      registry, json::array({serve("/v2/bob/app/manifests/steal", privateImage()["manifest_text"],
                                   privateImage()["media_type"])}));
  auto thief =
      pullState(registry + "/bob/app:steal", {"--creds", tokenCreds(), "--storage", "flat"});
  EXPECT_NE(thief.exit_code, 0) << thief.all();
  EXPECT_NE(thief.err.find(kRule), std::string::npos) << thief.err;
  // A HEAD first; refused, the bytes are asked for as if the host held nothing.
  EXPECT_FALSE(blobRequests(registry, "bob/app", "HEAD").empty());
  EXPECT_FALSE(blobRequests(registry, "bob/app", "GET").empty());
  EXPECT_EQ(thief.out.find("pulled"), std::string::npos) << thief.out;
}

// test/docker:v1 holds test/multi:v1's two small layers too (its registry links them into
// both repositories): one HEAD each, no bytes; under the strict setting, the bytes again.
TEST_F(SharedBytes, AnotherRepositoryThatHoldsTheBlobsAnswersTheHeadAndSharesThem) {
  const std::string registry = stack().proxy("proxy_token");
  ASSERT_EQ(pullState(registry + "/test/multi:v1", {"--creds", tokenCreds(), "--storage", "flat"})
                .exit_code,
            0);
  stack().reset(registry);
  auto docker =
      pullState(registry + "/test/docker:v1", {"--creds", tokenCreds(), "--storage", "flat"});
  ASSERT_EQ(docker.exit_code, 0) << docker.all();
  EXPECT_NE(docker.out.find("blobs:      1 downloaded, 2 already present"), std::string::npos)
      << docker.out;
  EXPECT_EQ(blobRequests(registry, "test/docker", "HEAD").size(), 2u);
  EXPECT_EQ(blobRequests(registry, "test/docker", "GET").size(), 1u);  // its own config

  // A third repository with the same layers, strictly: nothing but GETs, each blob whole.
  stack().reset(registry);
  auto strict = pullState(registry + "/test/dup:v1", {"--creds", tokenCreds(), "--storage", "flat",
                                                      "--shared-blob-proof", "fetch"});
  ASSERT_EQ(strict.exit_code, 0) << strict.all();
  EXPECT_TRUE(blobRequests(registry, "test/dup", "HEAD").empty());
  EXPECT_NE(strict.out.find("0 already present"), std::string::npos) << strict.out;
}

// The owner's own image in another registry: that registry serves every blob again (verified),
// then the stored copy is shared.
TEST_F(SharedBytes, AnotherRegistryServesTheBytesAgainAndThenShares) {
  ownerPulls({"--storage", "flat"});
  const std::string registry = stack().proxy("proxy_token");
  auto again =
      pullState(registry + "/alice/app:v1", {"--creds", aliceTokenCreds(), "--storage", "flat"});
  ASSERT_EQ(again.exit_code, 0) << again.all();
  EXPECT_NE(again.out.find("blobs:      3 downloaded, 0 already present"), std::string::npos)
      << again.out;
  EXPECT_EQ(bytesServed(registry, layerDigest(1).substr(7)),
            privateImage()["layers"][1]["size"].get<int64_t>());
  // The image is proven for both repositories now; without its records, for none.
  auto images = runProcess({PULLAGENT_BINARY, "images", "--state", state_.string(), "--json"});
  ASSERT_EQ(images.exit_code, 0) << images.all();
  const auto listed = json::parse(images.out)["images"];
  ASSERT_EQ(listed.size(), 1u) << images.out;
  EXPECT_EQ(listed[0]["provenFor"].get<std::set<std::string>>(),
            (std::set<std::string>{stack().registry("basic") + "/alice/private",
                                   registry + "/alice/app"}));
  // Recorded now: a redeploy from it asks for no blob at all.
  stack().reset(registry);
  auto redeploy =
      pullState(registry + "/alice/app:v1", {"--creds", aliceTokenCreds(), "--storage", "flat"});
  ASSERT_EQ(redeploy.exit_code, 0) << redeploy.all();
  EXPECT_TRUE(requests(registry, "/blobs/").empty());
}

// Sharing keeps what it bought: v2 of the same repository fetches its own layer and config
// only, with no request at all for the layer it shares with v1.
TEST_F(SharedBytes, ARedeployFromTheSameRepositoryFetchesOnlyTheNewLayer) {
  const std::string registry = stack().proxy("proxy_token");
  ASSERT_EQ(pullState(registry + "/test/multi:v1", {"--creds", tokenCreds(), "--storage", "flat"})
                .exit_code,
            0);
  stack().reset(registry);
  auto v2 = pullState(registry + "/test/multi:v2", {"--creds", tokenCreds(), "--storage", "flat"});
  ASSERT_EQ(v2.exit_code, 0) << v2.all();
  EXPECT_NE(v2.out.find("blobs:      2 downloaded, 1 already present"), std::string::npos)
      << v2.out;
  const std::string base = stack().image("test/multi:v2")["layers"][0]["digest"];
  EXPECT_TRUE(requests(registry, base.substr(7)).empty());
}

// Two sites on one private repository, each with its own credentials accepted: the second
// shares every byte the first fetched, and asks the registry for no blob at all.
TEST_F(SharedBytes, TwoSitesOnOnePrivateRepositoryShareEveryByte) {
  const std::string registry = stack().proxy("proxy_token");
  const fs::path first = dest_ / "site-1";
  const fs::path second = dest_ / "site-2";
  auto one = pullState(registry + "/alice/app:v1",
                       {"--creds", aliceTokenCreds(), "--rootfs", first.string()});
  ASSERT_EQ(one.exit_code, 0) << one.all();
  stack().reset(registry);
  auto two = pullState(registry + "/alice/app:v1",
                       {"--creds", aliceTokenCreds(), "--rootfs", second.string()});
  ASSERT_EQ(two.exit_code, 0) << two.all();
  EXPECT_NE(two.out.find("blobs:      0 downloaded, 3 already present"), std::string::npos)
      << two.out;
  EXPECT_TRUE(requests(registry, "/blobs/").empty());
  EXPECT_EQ(readFile(first / "srv/secret.txt"), readFile(second / "srv/secret.txt"));
}

// The service's path (`--once --site`): an anonymous site whose registry names the private
// image's digests publishes nothing of it.
TEST_F(SharedBytes, AnAnonymousSiteCannotPublishAnotherSitesBasicAuthLayers) {
  ownerPulls({"--storage", "flat"});
  const std::string hostile = stack().proxy("proxy_anon");
  stack().setFaults(
      hostile, json::array({serve("/v2/bob/steal/manifests/v1", privateImage()["manifest_text"],
                                  privateImage()["media_type"])}));
  const json agent = {
      {"stateDir", state_.string()}, {"caBundle", stack().ca()}, {"storage", "flat"}};
  const json site = {
      {"name", "thief"},
      {"properties",
       {{"siteConfig", {{"linuxFxVersion", "DOCKER|" + hostile + "/bob/steal:v1"}}}}}};
  writeFile(dest_ / "agent.json", agent.dump());
  writeFile(dest_ / "site.json", site.dump());
  auto once = runProcess({PULLAGENT_BINARY, "--once", "--site", (dest_ / "site.json").string(),
                          "--config", (dest_ / "agent.json").string()});
  EXPECT_NE(once.exit_code, 0) << once.all();
  EXPECT_NE(once.err.find(kRule), std::string::npos) << once.err;
  EXPECT_FALSE(blobRequests(hostile, "bob/steal", "GET").empty());
}

}  // namespace
}  // namespace pullagent::testing
