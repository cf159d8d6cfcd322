// Mirrors configured as containerd reads them (hosts.toml), in front of the real registry: a
// pull-through cache (docker-registry in proxy mode) behind a recording mirror that refuses
// credentials it was not given, and the fallthrough to the origin when a mirror fails.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "tests/integration/pull_fixture.h"

namespace pullagent::testing {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

class Mirrors : public PullTest {
 protected:
  void SetUp() override {
    PullTest::SetUp();
    stack().reset(mirror());
    stack().reset(cacheUpstream());
  }
  std::string origin() { return stack().proxy("proxy_token"); }  // token auth, recording
  std::string mirror() { return stack().proxy("mirror"); }
  std::string cacheUpstream() { return stack().proxy("cache_upstream"); }

  // <dest>/hosts/<origin>/hosts.toml with `body` after the origin's server and CA.
  fs::path hostsDir(const std::string& body) {
    const fs::path dir = dest_.path() / "hosts";
    fs::create_directories(dir / origin());
    std::ofstream(dir / origin() / "hosts.toml") << "server = \"https://" << origin() << "\"\n"
                                                 << "ca = \"" << stack().ca() << "\"\n"
                                                 << body;
    return dir;
  }
  // Debian's docker-registry 2.8 in proxy mode answers a manifest by tag now and then with a
  // 500 ("manifest schema v1 unsupported"), by digest always right: like most pull-through
  // cache setups, its mirror is asked for content by digest and tags go to the origin. (With
  // "resolve" the 500s fall through to the origin too.)
  std::string mirrorHost(const std::string& capabilities = R"(["pull"])") {
    return "[host.\"https://" + mirror() + "\"]\n  capabilities = " + capabilities + "\n  ca = \"" +
           stack().ca() + "\"\n";
  }
  // A pull that trusts the stack's CA only through hosts.toml (no --ca).
  ProcessResult pullVia(const fs::path& hosts, const std::string& image, const fs::path& into,
                        const std::vector<std::string>& more = {}) {
    std::vector<std::string> argv{PULLAGENT_BINARY, "pull",        origin() + "/" + image,
                                  "--dest",         into.string(), "--hosts-dir",
                                  hosts.string(),   "--creds",     tokenCreds()};
    argv.insert(argv.end(), more.begin(), more.end());
    return runProcess(argv);
  }
  std::vector<std::string> layerDigests(const std::string& image) {
    std::vector<std::string> digests;
    for (const auto& layer : stack().image(image)["layers"])
      digests.push_back(layer["digest"]);
    return digests;
  }
  void expectNoLeakedCredentials() {
    const auto stats = stack().stats(mirror());
    EXPECT_TRUE(stats["violations"].empty()) << stats["violations"].dump();
    for (const auto& request : stats["requests"])
      EXPECT_FALSE(request["authorization"].get<bool>()) << request["path"];
  }
};

TEST_F(Mirrors, APullThroughThePullThroughCacheNeverAsksTheOriginAndAWarmCacheNotItsUpstream) {
  const fs::path hosts = hostsDir(mirrorHost() + "  [host.\"https://" + mirror() +
                                  "\".header]\n    X-Mirror-Key = [\"k1\"]\n");
  const std::string image = "test/docker:v1";
  auto cold = pullVia(hosts, image, dest_.path() / "cold");
  ASSERT_EQ(cold.exit_code, 0) << cold.all();
  EXPECT_NE(cold.err.find("is fetched from mirror https://" + mirror()), std::string::npos)
      << cold.err;
  // The origin (the agent's own route to it) was asked what the tag points at, nothing else;
  // the mirror saw every other request, each naming the registry it is for and carrying the
  // header configured for it.
  EXPECT_TRUE(requests(origin(), "/blobs/").empty());
  EXPECT_TRUE(requests(origin(), "/manifests/sha256:").empty());
  const auto seen = stack().stats(mirror())["requests"];
  ASSERT_FALSE(seen.empty());
  for (const auto& request : seen) {
    EXPECT_NE(request["path"].get<std::string>().find("ns=" + origin()), std::string::npos)
        << request["path"];
    EXPECT_EQ(request["x_mirror_key"], "k1") << request["path"];
  }
  expectNoLeakedCredentials();
  // Cold: the cache fetched every layer from its upstream.
  for (const auto& digest : layerDigests(image))
    EXPECT_FALSE(requests(cacheUpstream(), "/blobs/" + digest).empty()) << digest;

  // Warm: another host (a fresh store) pulls the same image; the cache serves every blob itself.
  // The cache stores a missed blob beside serving it: wait until it has stored them all.
  const fs::path cached = fs::path(stack().ca()).parent_path().parent_path() /
                          "cache/data/docker/registry/v2/blobs/sha256";
  for (const auto& digest : layerDigests(image)) {
    const fs::path data = cached / digest.substr(7, 2) / digest.substr(7) / "data";
    for (int i = 0; i < 200 && !fs::exists(data); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    ASSERT_TRUE(fs::exists(data)) << data;
  }
  stack().reset(cacheUpstream());
  auto warm = pullVia(hosts, image, dest_.path() / "warm");
  ASSERT_EQ(warm.exit_code, 0) << warm.all();
  EXPECT_TRUE(requests(cacheUpstream(), "/blobs/").empty());
  EXPECT_TRUE(requests(origin(), "/blobs/").empty());
}

TEST_F(Mirrors, AMirrorThatFailsMidBlobOrSendsWrongBytesNeverFailsThePull) {
  const fs::path hosts = hostsDir(mirrorHost());
  const json big = stack().image("test/cached:v1")["layers"][0];
  const std::string digest = big["digest"];
  const int64_t size = big["size"];
  const int64_t cut = size / 2;

  // Cut mid-blob (the cache killed under it): the origin sends the rest from where it stopped.
  stack().setFaults(
      mirror(),
      json::array({{{"match", digest}, {"times", 1}, {"action", "reset_at"}, {"at", cut}}}));
  auto resumed = pullVia(hosts, "test/cached:v1", dest_.path() / "cut");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.all();
  auto from_origin = requests(origin(), "/blobs/" + digest);
  ASSERT_EQ(from_origin.size(), 1u) << resumed.err;
  ASSERT_TRUE(from_origin[0]["range"].is_string()) << from_origin[0].dump() << resumed.err;
  const int64_t start = std::stoll(from_origin[0]["range"].get<std::string>().substr(6));
  EXPECT_GT(start, 0);
  EXPECT_LE(start, cut);
  EXPECT_TRUE(fs::exists(dest_.path() / "cut/blobs/sha256" / digest.substr(7)));

  // Wrong bytes of the right length: the whole blob again, from the origin, from byte 0.
  stack().reset(mirror());
  stack().reset(origin());
  stack().setFaults(
      mirror(),
      json::array({{{"match", digest}, {"times", 1}, {"action", "corrupt_at"}, {"at", 1000}}}));
  auto verified = pullVia(hosts, "test/cached:v1", dest_.path() / "corrupt");
  ASSERT_EQ(verified.exit_code, 0) << verified.all();
  from_origin = requests(origin(), "/blobs/" + digest);
  ASSERT_EQ(from_origin.size(), 1u);
  EXPECT_TRUE(from_origin[0]["range"].is_null());
  EXPECT_NE(verified.err.find("did not verify"), std::string::npos) << verified.err;

  // A mirror nobody listens on (a stopped cache) ahead of the recording one answering 404.
  stack().reset(mirror());
  stack().reset(origin());
  const fs::path down = hostsDir("[host.\"https://127.0.0.1:9\"]\n" + mirrorHost());
  stack().setFaults(
      mirror(),
      json::array({{{"match", "/v2/"}, {"times", 1000}, {"action", "status"}, {"status", 404}}}));
  auto fell = pullVia(down, "test/cached:v1", dest_.path() / "down");
  ASSERT_EQ(fell.exit_code, 0) << fell.all();
  EXPECT_FALSE(requests(mirror(), "/blobs/").empty());  // asked after the dead one, in order
  EXPECT_FALSE(requests(origin(), "/blobs/").empty());
}

TEST_F(Mirrors, TheOriginsCredentialsNeverReachAMirrorEvenWhenTheOriginServesEverything) {
  const fs::path hosts = hostsDir(mirrorHost());
  // The mirror has nothing: every request goes to it first, then to the origin with the
  // token the origin's challenge led to.
  stack().setFaults(
      mirror(),
      json::array({{{"match", "/v2/"}, {"times", 1000}, {"action", "status"}, {"status", 404}}}));
  auto result = pullVia(hosts, "test/cached:v1", dest_.path() / "layout");
  ASSERT_EQ(result.exit_code, 0) << result.all();
  const auto blobs = requests(mirror(), "/blobs/");
  EXPECT_EQ(blobs.size(), layerDigests("test/cached:v1").size() + 1);  // layers and config
  expectNoLeakedCredentials();
  bool origin_authorized = false;
  for (const auto& request : requests(origin(), "/blobs/"))
    origin_authorized = origin_authorized || request["authorization"].get<bool>();
  EXPECT_TRUE(origin_authorized);
}

TEST_F(Mirrors, ATagIsResolvedOnlyAtAHostAllowedToResolveAndOverridePathIsTakenAsWritten) {
  // skip_verify is refused unless the agent allows it.
  const fs::path risky = hostsDir(mirrorHost() + "  skip_verify = true\n");
  auto refused = pullVia(risky, "test/cached:v1", dest_.path() / "risky");
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.err.find("allowSkipVerify"), std::string::npos) << refused.err;

  // Allowed to resolve: the tag is asked of the mirror first.
  auto resolving = pullVia(hostsDir(mirrorHost(R"(["pull", "resolve"])")), "test/cached:v1",
                           dest_.path() / "resolving");
  ASSERT_EQ(resolving.exit_code, 0) << resolving.all();
  EXPECT_EQ(requests(mirror(), "/manifests/v1").size(), 1u);

  // Pull only, at an API root written out in full: tags go to the origin alone.
  stack().reset(mirror());
  stack().reset(origin());
  const fs::path hosts = hostsDir("[host.\"https://" + mirror() +
                                  "/v2\"]\n  capabilities = [\"pull\"]\n  override_path = true\n"
                                  "  ca = \"" +
                                  stack().ca() + "\"\n");
  auto result = pullVia(hosts, "test/cached:v1", dest_.path() / "layout");
  ASSERT_EQ(result.exit_code, 0) << result.all();
  EXPECT_TRUE(requests(mirror(), "/manifests/v1").empty());
  EXPECT_EQ(requests(origin(), "/manifests/v1").size(), 2u);  // the challenge, then the manifest
  EXPECT_TRUE(requests(origin(), "/blobs/").empty());
  EXPECT_FALSE(requests(mirror(), "/v2/test/cached/blobs/").empty());
}

}  // namespace
}  // namespace pullagent::testing
