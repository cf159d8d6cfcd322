// End-to-end pulls from the real distribution registry over TLS: what lands on disk, what
// standard tools make of it, and what a second pull does.
#include <gtest/gtest.h>

#include <filesystem>

#include "tests/integration/pull_fixture.h"

namespace pullagent::testing {
namespace {

class Pull : public PullTest {};

TEST_F(Pull, AnonymousMultiLayerImageBecomesAnOciLayoutUmociUnpacks) {
  const auto& image = stack().image("test/multi:v1");
  auto result = pull(stack().registry("anon") + "/test/multi:v1");
  ASSERT_EQ(result.exit_code, 0) << result.all();

  for (const auto& layer : image["layers"])
    EXPECT_TRUE(hasBlob(layer["digest"])) << layer;
  EXPECT_TRUE(hasBlob(image["config"]));
  EXPECT_TRUE(hasBlob(image["digest"]));
  EXPECT_TRUE(ingestFiles().empty());
  auto index = nlohmann::json::parse(readFile(dest_ / "index.json"));
  ASSERT_EQ(index["manifests"].size(), 1u);
  EXPECT_EQ(index["manifests"][0]["digest"], image["digest"]);
  EXPECT_EQ(index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"], "v1");
  EXPECT_NE(readFile(dest_ / "oci-layout").find("1.0.0"), std::string::npos);
  EXPECT_NE(result.out.find(image["digest"].get<std::string>()), std::string::npos);

  TempDir bundle("pullagent-umoci");
  auto umoci = runProcess({"/usr/bin/umoci", "unpack", "--rootless", "--image",
                           dest_.path().string() + ":v1", (bundle / "b").string()});
  ASSERT_EQ(umoci.exit_code, 0) << umoci.all();
  EXPECT_EQ(std::filesystem::file_size(bundle / "b/rootfs/opt/app/data.bin"), 4u * 1024 * 1024);
  EXPECT_TRUE(std::filesystem::exists(bundle / "b/rootfs/app/config.txt"));
}

TEST_F(Pull, SecondPullDownloadsNoBlob) {
  const std::string registry = stack().proxy("proxy_anon");
  ASSERT_EQ(pull(registry + "/test/multi:v1").exit_code, 0);
  stack().reset(registry);
  auto again = pull(registry + "/test/multi:v1");
  ASSERT_EQ(again.exit_code, 0) << again.all();
  EXPECT_TRUE(requests(registry, "/blobs/").empty());
  EXPECT_NE(again.out.find("0 downloaded"), std::string::npos) << again.out;
}

TEST_F(Pull, SharedBaseLayerIsNotFetchedAgain) {
  const std::string registry = stack().proxy("proxy_anon");
  ASSERT_EQ(pull(registry + "/test/multi:v1").exit_code, 0);
  stack().reset(registry);
  ASSERT_EQ(pull(registry + "/test/multi:v2").exit_code, 0);
  const auto& v2 = stack().image("test/multi:v2");
  EXPECT_TRUE(requests(registry, v2["layers"][0]["digest"].get<std::string>()).empty());
  EXPECT_EQ(requests(registry, v2["layers"][1]["digest"].get<std::string>()).size(), 1u);
  auto index = nlohmann::json::parse(readFile(dest_ / "index.json"));
  EXPECT_EQ(index["manifests"].size(), 2u);  // v1 and v2 both recorded
}

TEST_F(Pull, IndexSelectsTheRequestedPlatform) {
  const auto& image = stack().image("test/index:v1");
  auto result = pull(stack().registry("anon") + "/test/index:v1");
  ASSERT_EQ(result.exit_code, 0) << result.all();
  auto index = nlohmann::json::parse(readFile(dest_ / "index.json"));
  EXPECT_EQ(index["manifests"][0]["digest"], image["amd64"]["digest"]);
  for (const auto& layer : image["amd64"]["layers"])
    EXPECT_TRUE(hasBlob(layer["digest"]));
  EXPECT_TRUE(hasBlob(image["digest"]));  // the index itself is kept too

  auto arm = pull(stack().registry("anon") + "/test/index:v1", {"--platform", "linux/arm64"});
  ASSERT_EQ(arm.exit_code, 0) << arm.all();
  auto missing = pull(stack().registry("anon") + "/test/index:v1", {"--platform", "linux/s390x"});
  EXPECT_EQ(missing.exit_code, 4) << missing.all();
  EXPECT_NE(missing.err.find("available: linux/arm64/v8, linux/amd64"), std::string::npos)
      << missing.err;
}

TEST_F(Pull, PinnedDigestIsVerified) {
  const auto& image = stack().image("test/multi:v1");
  auto result =
      pull(stack().registry("anon") + "/test/multi@" + image["digest"].get<std::string>());
  ASSERT_EQ(result.exit_code, 0) << result.all();
  // A digest the registry does not have is a clean "not found".
  auto missing = pull(stack().registry("anon") + "/test/multi@sha256:" + std::string(64, '0'));
  EXPECT_EQ(missing.exit_code, 4) << missing.all();
}

TEST_F(Pull, DockerSchema2Image) {
  const auto& image = stack().image("test/docker:v1");
  auto result = pull(stack().registry("anon") + "/test/docker:v1");
  ASSERT_EQ(result.exit_code, 0) << result.all();
  EXPECT_NE(result.out.find("application/vnd.docker.distribution.manifest.v2+json"),
            std::string::npos);
  for (const auto& layer : image["layers"])
    EXPECT_TRUE(hasBlob(layer["digest"]));
}

TEST_F(Pull, ABlobListedTwiceIsFetchedOnce) {
  const std::string registry = stack().proxy("proxy_anon");
  const auto& image = stack().image("test/dup:v1");
  ASSERT_EQ(image["layers"][0]["digest"], image["layers"][1]["digest"]);
  auto result = pull(registry + "/test/dup:v1", {"--concurrency", "4"});
  ASSERT_EQ(result.exit_code, 0) << result.all();
  EXPECT_EQ(requests(registry, image["layers"][0]["digest"].get<std::string>()).size(), 1u);
}

TEST_F(Pull, MissingRepositoryOrTagIsNotFoundWithTheRegistrysWords) {
  auto result = pull(stack().registry("anon") + "/test/multi:nope");
  EXPECT_EQ(result.exit_code, 4) << result.all();
  EXPECT_NE(result.err.find("MANIFEST_UNKNOWN"), std::string::npos) << result.err;
  // distribution 2.8 answers MANIFEST_UNKNOWN for a repository it has never seen, too.
  auto repo = pull(stack().registry("anon") + "/test/absent:v1");
  EXPECT_EQ(repo.exit_code, 4) << repo.all();
  EXPECT_NE(repo.err.find("HTTP 404"), std::string::npos) << repo.err;
}

TEST_F(Pull, UnknownCertificateAuthorityFailsClosed) {
  auto argv = pullCommand(stack().registry("anon") + "/test/multi:v1", {});
  argv[6] = stack().otherCa();  // --ca <a CA that did not sign the registry's certificate>
  auto result = runProcess(argv);
  EXPECT_EQ(result.exit_code, 6) << result.all();
  EXPECT_NE(result.err.find("TLS verification failed"), std::string::npos) << result.err;
}

TEST_F(Pull, PlainHttpIsNeverTriedAgainstATlsRegistry) {
  auto result = pull(stack().registry("anon") + "/test/multi:v1", {"--insecure"});
  EXPECT_NE(result.exit_code, 0);  // an http request to a TLS port fails; nothing is downgraded
  EXPECT_FALSE(hasBlob(stack().image("test/multi:v1")["digest"]));
}

TEST_F(Pull, DiffIdCountMustMatchTheLayers) {
  auto result = pull(stack().registry("anon") + "/test/diffcount:v1");
  EXPECT_EQ(result.exit_code, 6) << result.all();
  EXPECT_NE(result.err.find("lists 2 diff_ids but the manifest has 1 layers"), std::string::npos)
      << result.err;
}

TEST_F(Pull, BadReferenceIsAUsageError) {
  auto result = pull(stack().registry("anon") + "/Test/Multi:v1");
  EXPECT_EQ(result.exit_code, 2) << result.all();
  EXPECT_NE(result.err.find("must be lowercase"), std::string::npos) << result.err;
}

// Every command finds the state dir the same way: --state, else the agent config's stateDir.
// On a host whose agent config moves it, pull, images, status and gc work on the moved one.
TEST_F(Pull, EveryCommandFindsTheStateDirTheAgentConfigNames) {
  const std::filesystem::path moved = dest_.path() / "moved-state";
  const std::filesystem::path config = dest_.path() / "agent.json";
  writeFile(config, nlohmann::json{{"stateDir", moved.string()}}.dump());
  const std::string image = stack().registry("anon") + "/test/multi:v1";
  const std::string digest = stack().image("test/multi:v1")["digest"];
  auto pulled = runProcess({PULLAGENT_BINARY, "pull", image, "--config", config.string(), "--ca",
                            stack().ca(), "--storage", "flat"});
  ASSERT_EQ(pulled.exit_code, 0) << pulled.all();
  EXPECT_TRUE(std::filesystem::exists(moved / "images" / digest.substr(7)));
  auto images = runProcess({PULLAGENT_BINARY, "images", "--config", config.string(), "--json"});
  ASSERT_EQ(images.exit_code, 0) << images.all();
  EXPECT_NE(images.out.find(digest), std::string::npos) << images.out;
  auto status = runProcess({PULLAGENT_BINARY, "status", "--config", config.string()});
  EXPECT_EQ(status.exit_code, 0) << status.all();
  // gc (which keeps every published image unless told which to keep) sees the moved dir's
  // records: the image's config and its three layers.
  auto gc = runProcess({PULLAGENT_BINARY, "gc", "--config", config.string()});
  ASSERT_EQ(gc.exit_code, 0) << gc.all();
  EXPECT_NE(gc.out.find("provenance: 4 records kept"), std::string::npos) << gc.out;
  EXPECT_TRUE(std::filesystem::exists(moved / "images" / digest.substr(7)));
}

// A state dir that does not exist is an error naming it and where it came from, for every
// command that only reads or collects: a typo must not look like an empty host.
TEST_F(Pull, AStateDirThatDoesNotExistIsNamedByEveryCommandThatReadsIt) {
  const std::string missing = (dest_.path() / "no-such-state").string();
  const std::filesystem::path config = dest_.path() / "agent.json";
  writeFile(config, nlohmann::json{{"stateDir", missing}}.dump());
  for (const std::vector<std::string>& command :
       {std::vector<std::string>{"status"}, {"images"}, {"gc"}, {"mount", "sha256:00", "/tmp/x"}}) {
    std::vector<std::string> by_option{PULLAGENT_BINARY};
    by_option.insert(by_option.end(), command.begin(), command.end());
    std::vector<std::string> by_config = by_option;
    by_option.insert(by_option.end(), {"--state", missing});
    by_config.insert(by_config.end(), {"--config", config.string()});
    auto named = runProcess(by_option);
    EXPECT_EQ(named.exit_code, 4) << command[0] << ": " << named.all();
    EXPECT_NE(named.err.find("state directory " + missing + " (from --state) does not exist"),
              std::string::npos)
        << named.err;
    auto configured = runProcess(by_config);
    EXPECT_EQ(configured.exit_code, 4) << command[0] << ": " << configured.all();
    EXPECT_NE(configured.err.find("(from stateDir in " + config.string() + ") does not exist"),
              std::string::npos)
        << configured.err;
    EXPECT_FALSE(std::filesystem::exists(missing)) << command[0];
  }
}

// --dest alone only pulls into an OCI layout, --state or --config alone publish into a state
// dir: given together, one of them would go unused, so the command refuses them before any
// request, naming both.
TEST_F(Pull, AnOciLayoutAndAStateDirTogetherAreRefusedNotOneOfThemIgnored) {
  const std::filesystem::path config = dest_.path() / "agent.json";
  writeFile(config, nlohmann::json{{"stateDir", (dest_.path() / "state").string()}}.dump());
  for (const std::vector<std::string>& publish :
       {std::vector<std::string>{"--state", (dest_.path() / "state").string()},
        {"--config", config.string()}}) {
    std::vector<std::string> argv{PULLAGENT_BINARY, "pull", "127.0.0.1:9/app:v1", "--dest",
                                  (dest_.path() / "layout").string()};
    argv.insert(argv.end(), publish.begin(), publish.end());
    auto refused = runProcess(argv);
    EXPECT_EQ(refused.exit_code, 2) << refused.all();
    EXPECT_NE(refused.err.find("--dest only pulls into that OCI layout, " + publish[0]),
              std::string::npos)
        << refused.err;
    EXPECT_FALSE(std::filesystem::exists(dest_.path() / "layout"));
    EXPECT_FALSE(std::filesystem::exists(dest_.path() / "state"));
  }
}

}  // namespace
}  // namespace pullagent::testing
