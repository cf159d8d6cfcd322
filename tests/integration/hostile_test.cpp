// A tenant's registry is any server the tenant runs: answers that lie about types, nest without
// end, dribble, hang, or leave poisoned partial downloads. The real binary must fail that pull
// with a clear error and exit code, never crash (a signal), hang or print a secret.
#include <gtest/gtest.h>
#include <sys/mount.h>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <thread>

#include "puller/oci/sha256.h"
#include "puller/state/state_lock.h"
#include "tests/integration/pull_fixture.h"
#include "tests/support/image_view.h"

namespace pullagent::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using std::chrono::seconds;

constexpr int kExitNotFound = 4;
constexpr int kExitTransient = 5;
constexpr int kExitIntegrity = 6;
constexpr int kExitUsage = 2;
constexpr const char* kOciManifest = "application/vnd.oci.image.manifest.v1+json";
constexpr const char* kOciConfig = "application/vnd.oci.image.config.v1+json";

class Hostile : public PullTest {
 protected:
  std::string registry() { return stack().proxy("proxy_anon"); }
  std::string image() { return registry() + "/hostile/app:v1"; }
  void script(json faults) { stack().setFaults(registry(), std::move(faults)); }

  // A fault answering paths that contain `match` with `body` (`times` requests at most).
  static json respond(const std::string& match, const std::string& body,
                      const std::string& content_type = kOciManifest, int status = 200,
                      int times = 100) {
    return {{"match", match},
            {"times", times},
            {"action", "respond"},
            {"status", status},
            {"headers", {{"Content-Type", content_type}}},
            {"body", body}};
  }
  // A zero-layer image whose config is `config`: the manifest and config faults serving it.
  static json imageServing(const json& config) {
    const std::string config_bytes = config.dump();
    const std::string config_digest = puller::Sha256::of(config_bytes).str();
    json manifest = {
        {"schemaVersion", 2},
        {"mediaType", kOciManifest},
        {"config",
         {{"mediaType", kOciConfig}, {"digest", config_digest}, {"size", config_bytes.size()}}},
        {"layers", json::array()}};
    return json::array({respond("/manifests/", manifest.dump()),
                        respond("/blobs/" + config_digest, config_bytes, "application/json")});
  }

  // The run ended by itself (no signal, no sanitizer abort) with `code`, saying `fragment`.
  static void expectCleanFailure(const ProcessResult& result, int code,
                                 const std::string& fragment) {
    EXPECT_EQ(result.exit_code, code) << result.all();
    EXPECT_NE(result.err.find(fragment), std::string::npos) << result.err;
    EXPECT_EQ(result.err.find("AddressSanitizer"), std::string::npos) << result.err;
    EXPECT_EQ(result.err.find("runtime error"), std::string::npos) << result.err;
  }
};

TEST_F(Hostile, ManifestsThatLieAboutTypesAreNamedByPath) {
  struct Case {
    std::string name;
    json manifest;
    std::string fragment;
  };
  const json config = {
      {"mediaType", kOciConfig}, {"digest", "sha256:" + std::string(64, 'c')}, {"size", 10}};
  const json platform_null = {
      {"schemaVersion", 2},
      {"mediaType", "application/vnd.oci.image.index.v1+json"},
      {"manifests", json::array({{{"mediaType", kOciManifest},
                                  {"digest", "sha256:" + std::string(64, 'a')},
                                  {"size", 5},
                                  {"platform", {{"os", nullptr}, {"architecture", 64}}}}})}};
  for (const Case& c : {
           Case{"size_string",
                {{"schemaVersion", 2},
                 {"mediaType", kOciManifest},
                 {"config",
                  {{"mediaType", kOciConfig}, {"digest", config["digest"]}, {"size", "10"}}},
                 {"layers", json::array()}},
                "manifest: config.size: expected a whole number"},
           Case{"layers_object",
                {{"schemaVersion", 2},
                 {"mediaType", kOciManifest},
                 {"config", config},
                 {"layers", {{"a", 1}}}},
                "manifest: layers: expected an array"},
           Case{"size_huge",
                {{"schemaVersion", 2},
                 {"mediaType", kOciManifest},
                 {"config", config},
                 {"layers", json::array({{{"mediaType", "application/vnd.oci.image.layer.v1.tar"},
                                          {"digest", config["digest"]},
                                          {"size", 1e308}}})}},
                "manifest: layers[0].size: expected a whole number"},
           Case{"annotation_number",
                {{"schemaVersion", 2},
                 {"mediaType", kOciManifest},
                 {"config",
                  {{"mediaType", kOciConfig},
                   {"digest", config["digest"]},
                   {"size", 10},
                   {"annotations", {{"a", 5}}}}},
                 {"layers", json::array()}},
                "manifest: config.annotations.a: expected a string, got number 5"},
           Case{"platform_types", platform_null, "manifest: manifests[0].platform.architecture"},
       }) {
    SCOPED_TRACE(c.name);
    stack().reset(registry());
    script(json::array(
        {respond("/manifests/", c.manifest.dump(),
                 c.manifest.contains("manifests") ? "application/vnd.oci.image.index.v1+json"
                                                  : kOciManifest)}));
    expectCleanFailure(pull(image(), {"--retries", "1"}), kExitIntegrity, c.fragment);
  }
}

TEST_F(Hostile, DeeplyNestedJsonIsRefusedWithoutRecursion) {
  const std::string deep = "{\"schemaVersion\":2,\"layers\":" + std::string(300000, '[') +
                           std::string(300000, ']') + "}";
  script(json::array({respond("/manifests/", deep)}));
  expectCleanFailure(pull(image(), {"--retries", "1"}), kExitIntegrity, "nested deeper than 64");
}

TEST_F(Hostile, ImageConfigsThatLieAboutTypesFailThePublish) {
  for (const json& process : {json{{"User", 12}}, json{{"WorkingDir", json::array()}},
                              json{{"Env", {"A=1", nullptr}}}, json{{"Cmd", "not a list"}}}) {
    SCOPED_TRACE(process.dump());
    stack().reset(registry());
    json config = {{"architecture", "amd64"},
                   {"os", "linux"},
                   {"config", process},
                   {"rootfs", {{"type", "layers"}, {"diff_ids", json::array()}}}};
    script(imageServing(config));
    TempDir bundle("pullagent-hostile-bundle");
    auto result = pull(image(), {"--bundle", (bundle.path() / "b").string(), "--retries", "1"});
    expectCleanFailure(result, kExitIntegrity, "image config: config.");
    EXPECT_FALSE(fs::exists(bundle.path() / "b"));
  }
  // null where Docker writes null is fine.
  stack().reset(registry());
  script(imageServing({{"architecture", "amd64"},
                       {"os", "linux"},
                       {"config", {{"Entrypoint", nullptr}, {"Cmd", nullptr}, {"User", nullptr}}},
                       {"rootfs", {{"type", "layers"}, {"diff_ids", json::array()}}}}));
  TempDir bundle("pullagent-hostile-bundle");
  auto result = pull(image(), {"--bundle", (bundle.path() / "b").string()});
  EXPECT_EQ(result.exit_code, 0) << result.all();
}

TEST_F(Hostile, ErrorBodiesOfAnyShapeStillGiveTheStatusMeaning) {
  script(
      json::array({respond("/manifests/",
                           R"({"errors":[{"code":5,"message":null},"x",{"code":"MANIFEST_UNKNOWN",)"
                           R"("message":{"a":1}}]})",
                           "application/json", 404)}));
  expectCleanFailure(pull(image(), {"--retries", "1"}), kExitNotFound, "MANIFEST_UNKNOWN");
}

TEST_F(Hostile, AnUnexpectedContentTypeIsSaidSo) {
  script(json::array({respond("/manifests/", "<html>nginx</html>", "text/plain")}));
  expectCleanFailure(pull(image(), {"--retries", "1"}), kExitUsage, "Content-Type \"text/plain\"");
}

TEST_F(Hostile, OversizedResponseHeadersAreAProtocolErrorNamingTheHost) {
  json fault = respond("/manifests/", "{}");
  fault["junk_headers"] = 2000;  // 200 kB of headers
  script(json::array({fault}));
  const std::string host = registry().substr(0, registry().find(':'));
  auto result = pull(image(), {"--retries", "1"});
  expectCleanFailure(result, kExitIntegrity, "headers");
  EXPECT_NE(result.err.find(host), std::string::npos) << result.err;
}

// One header line of 10 MB in an auth challenge: curl's own line cap refuses it (as "out of
// memory"); the error says what happened, and where.
TEST_F(Hostile, ATenMegabyteChallengeHeaderIsNamedAsAHeaderOverTheCap) {
  json v2 = respond("/v2/", "{}", "application/json", 401, 5);
  v2["headers"]["WWW-Authenticate"] = "Bearer realm=\"" + std::string(10 * 1024 * 1024, 'x') + "\"";
  script(json::array({v2}));
  const std::string host = registry().substr(0, registry().find(':'));
  auto result = pull(image(), {"--retries", "1"});
  expectCleanFailure(result, kExitIntegrity, "response header line longer than");
  EXPECT_NE(result.err.find(host), std::string::npos) << result.err;
  EXPECT_EQ(result.err.find("Out of memory"), std::string::npos) << result.err;
}

TEST_F(Hostile, TokenAnswersThatLieAboutTypesFailCleanly) {
  const std::string realm = "https://" + registry() + "/hostile-token";
  const json challenge = {{"WWW-Authenticate", "Bearer realm=\"" + realm + "\",service=\"h\""}};
  for (const json& answer : {json{{"token", 5}}, json{{"token", json::array({"x"})}},
                             json::array({1}), json{{"access_token", nullptr}}}) {
    SCOPED_TRACE(answer.dump());
    stack().reset(registry());
    json v2 = respond("/v2/hostile", "{}", "application/json", 401, 1);
    v2["headers"].update(challenge);
    script(json::array({v2, respond("/hostile-token", answer.dump(), "application/json")}));
    auto result = pull(image(), {"--retries", "1"});
    EXPECT_NE(result.exit_code, 0);
    EXPECT_LT(result.exit_code, 128) << result.all();  // no signal
    EXPECT_NE(result.err.find("token"), std::string::npos) << result.err;
  }
}

TEST_F(Hostile, AnAbsurdTokenLifetimeNeitherOverflowsNorDefeatsTheCache) {
  const std::string realm = "https://" + registry() + "/hostile-token";
  for (const char* expires_in : {"9223372036854775807", "1e308", "-5", "18446744073709551616"}) {
    SCOPED_TRACE(expires_in);
    stack().reset(registry());
    TempDir dest("pullagent-hostile-token");
    // Every registry request is challenged until it carries the token; the anonymous registry
    // behind the proxy then serves the real image.
    json v2 = respond("/v2/test/multi/manifests/v1", "{}", "application/json", 401, 1);
    v2["headers"]["WWW-Authenticate"] =
        "Bearer realm=\"" + realm + "\",service=\"h\",scope=\"repository:test/multi:pull\"";
    script(json::array(
        {v2, respond("/hostile-token",
                     std::string(
                         R"({"token":"tok","issued_at":"99999-01-01T00:00:00Z","expires_in":)") +
                         expires_in + "}",
                     "application/json")}));
    auto argv = pullCommand(registry() + "/test/multi:v1", {});
    argv[4] = dest.path().string();
    auto result = runProcess(argv);
    ASSERT_EQ(result.exit_code, 0) << result.all();
    EXPECT_EQ(requests(registry(), "/hostile-token").size(), 1u);  // cached for the whole pull
  }
}

TEST_F(Hostile, DribblingAndHangingServersAreCutOffByTheProgressRule) {
  for (const json& fault :
       {json{{"match", "/manifests/"},
             {"times", 100},
             {"action", "respond"},
             {"headers", {{"Content-Type", kOciManifest}}},
             {"body", std::string(2000, ' ')},
             {"rate", 20}},
        json{{"match", "/manifests/"}, {"times", 100}, {"action", "hang"}, {"secs", 60}}}) {
    SCOPED_TRACE(fault["action"].get<std::string>());
    stack().reset(registry());
    script(json::array({fault}));
    const auto started = std::chrono::steady_clock::now();
    auto result = pull(image(), {"--retries", "1", "--stall-timeout", "2"});
    EXPECT_LT(std::chrono::steady_clock::now() - started, seconds(20));
    expectCleanFailure(result, kExitTransient, "bytes/s over the last 2 s");
  }
}

TEST_F(Hostile, PartialBytesFromAHostileSourceNeverFailAnHonestPull) {
  const json& big = stack().image("test/multi:v1")["layers"][1];
  const std::string digest = big["digest"];
  TempDir state("pullagent-hostile-state");
  auto pullInto = [&](const std::string& source) {
    auto argv = pullCommand(source + "/test/multi:v1", {"--retries", "1"});
    argv[3] = "--state";
    argv[4] = state.path().string();
    return runProcess(argv);
  };
  // The hostile source sends 300 kB of which one byte is wrong, then cuts the connection.
  script(json::array({{{"match", digest},
                       {"times", 10},
                       {"action", "truncate_at"},
                       {"at", 300000},
                       {"flip_at", 1000}}}));
  auto hostile = pullInto(registry());
  ASSERT_NE(hostile.exit_code, 0) << hostile.all();
  // The honest registry serves the same digest: its pull succeeds on the first run.
  auto honest = pullInto(stack().registry("anon"));
  EXPECT_EQ(honest.exit_code, 0) << honest.all();
  // And the source whose own partial download is poisoned resumes it, finds the result wrong and
  // downloads the blob once more from byte 0, within the same pull.
  fs::remove_all(state.path() / "images");
  fs::remove_all(state.path() / "snapshots");  // else the unpacked layer needs no blob
  fs::remove(state.path() / "content" / "blobs" / "sha256" / digest.substr(7));
  stack().reset(registry());
  auto again = pullInto(registry());
  EXPECT_EQ(again.exit_code, 0) << again.all();
  EXPECT_NE(again.err.find("downloading it again from the start"), std::string::npos) << again.err;
}

// The host side: trees and files of the state dir that something else damaged or planted.
class HostSide : public PullTest {
 protected:
  ProcessResult pullState(const fs::path& state, const std::string& image) {
    return runProcess({PULLAGENT_BINARY, "pull", stack().registry("anon") + "/" + image, "--state",
                       state.string(), "--ca", stack().ca()});
  }
};

TEST_F(HostSide, AHalfDeletedImageIsRepublishedNeverReused) {
  TempDir state("pullagent-host-state");
  ASSERT_EQ(pullState(state.path(), "test/docker:v1").exit_code, 0);
  const std::string digest = stack().image("test/docker:v1")["digest"];
  const fs::path tree = state.path() / "images" / digest.substr(7);
  ASSERT_TRUE(fs::exists(tree / "pullagent-published"));
  // What an old gc killed midway left: the name, without the marker and most of the tree.
  fs::remove(tree / "pullagent-published");
  fs::remove(tree / "config.json");
  fs::remove_all(tree / "rootfs" / "etc");
  auto again = pullState(state.path(), "test/docker:v1");
  ASSERT_EQ(again.exit_code, 0) << again.all();
  EXPECT_TRUE(fs::exists(tree / "config.json"));
  EXPECT_TRUE(fs::exists(imageFile(tree, "etc/os-release")));
  EXPECT_TRUE(fs::exists(tree / "pullagent-published"));
}

TEST_F(HostSide, RootfsTreesArePrivateToRoot) {
  TempDir out("pullagent-host-rootfs");
  auto result = runProcess({PULLAGENT_BINARY, "pull", stack().registry("anon") + "/test/docker:v1",
                            "--rootfs", (out.path() / "r").string(), "--state",
                            (out.path() / "s").string(), "--ca", stack().ca()});
  ASSERT_EQ(result.exit_code, 0) << result.all();
  EXPECT_EQ(fs::status(out.path() / "r").permissions() & fs::perms::all, fs::perms::owner_all);
}

TEST_F(HostSide, TheGeneratedBundleRunsUnderRuncWithDockersDefaultsOnly) {
  if (::geteuid() != 0)
    GTEST_SKIP() << "runc runs bundles as root here";
  TempDir out("pullagent-host-runc");
  const fs::path bundle = out.path() / "bundle";
  auto pulled = runProcess({PULLAGENT_BINARY, "pull", stack().registry("anon") + "/test/docker:v1",
                            "--bundle", bundle.string(), "--state", (out.path() / "s").string(),
                            "--storage", "flat", "--ca", stack().ca()});
  ASSERT_EQ(pulled.exit_code, 0) << pulled.all();
  // The test images hold no programs: the host's shell goes in, the generated config stays.
  auto shell = runProcess(
      {"/usr/bin/python3", std::string(PULLAGENT_SOURCE_DIR) + "/tests/support/bundle_shell.py",
       bundle.string(),
       "grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status; "
       "unshare -U true 2>/dev/null && echo userns-allowed || echo userns-denied"});
  ASSERT_EQ(shell.exit_code, 0) << shell.all();
  const std::string id = "pullagent-test-" + std::to_string(::getpid());
  auto run = runProcess({"/usr/sbin/runc", "run", "--bundle", bundle.string(), id});
  runProcess({"/usr/sbin/runc", "delete", "-f", id});
  ASSERT_EQ(run.exit_code, 0) << run.all();
  // Docker's 14 default capabilities are exactly the mask 0xa80425fb.
  EXPECT_NE(run.out.find("CapEff:\t00000000a80425fb"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("CapBnd:\t00000000a80425fb"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("NoNewPrivs:\t1"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("Seccomp:\t2"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("userns-denied"), std::string::npos) << run.out;
}

TEST_F(HostSide, GcWaitingForTheStateLockEndsOnSigterm) {
  TempDir state("pullagent-host-gc");
  // A pull holds the state shared: gc waits for it, and SIGTERM must still end it.
  auto held =
      puller::StateLock::acquire(puller::StateDir(state.path()), puller::StateLock::Mode::kShared);
  ASSERT_TRUE(held.ok()) << held.error().message;
  BackgroundProcess gc({PULLAGENT_BINARY, "gc", "--state", state.path().string()});
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const auto signalled = std::chrono::steady_clock::now();
  gc.kill(SIGTERM);
  EXPECT_EQ(gc.wait(), 128 + SIGTERM);
  EXPECT_LT(std::chrono::steady_clock::now() - signalled, seconds(5));
}

TEST_F(HostSide, StatusNeitherHangsOnAFifoNorPrintsATenantsEscapes) {
  TempDir state("pullagent-host-status");
  fs::create_directories(state.path() / "sites");
  ASSERT_EQ(::mkfifo((state.path() / "sites" / "fifo.json").c_str(), 0600), 0);
  fs::create_symlink("/dev/zero", state.path() / "sites" / "zero.json");
  json evil = {{"site", "evil"},
               {"phase", "failed"},
               {"image", "reg.io/x:\x1b[2J\x1b]0;owned\x07"},
               {"lastError", {{"phase", "pull"}, {"message", "line\nforged\r\x1b[31m"}}}};
  writeFile(state.path() / "sites" / "evil.json", evil.dump());
  const auto started = std::chrono::steady_clock::now();
  auto result = runProcess({PULLAGENT_BINARY, "status", "--state", state.path().string()});
  EXPECT_LT(std::chrono::steady_clock::now() - started, seconds(10));
  ASSERT_EQ(result.exit_code, 0) << result.all();
  EXPECT_EQ(result.out.find('\x1b'), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("\\x1b[2J"), std::string::npos) << result.out;
  EXPECT_EQ(std::count(result.out.begin(), result.out.end(), '\n'), 2) << result.out;
}

// Disk full while downloading and while extracting, on a tmpfs of a chosen size.
class DiskFull : public PullTest {
 protected:
  void SetUp() override {
    PullTest::SetUp();
    if (::mount("tmpfs", mount_.path().c_str(), "tmpfs", 0, "size=2m") != 0)
      GTEST_SKIP() << "cannot mount a tmpfs here (needs root): " << std::strerror(errno);
    mounted_ = true;
  }
  void TearDown() override {
    if (mounted_)
      ::umount2(mount_.path().c_str(), MNT_DETACH);
  }
  void resize(const std::string& size) {
    ASSERT_EQ(
        ::mount("tmpfs", mount_.path().c_str(), "tmpfs", MS_REMOUNT, ("size=" + size).c_str()), 0)
        << std::strerror(errno);
  }
  ProcessResult pullState(const std::string& image) {
    return runProcess({PULLAGENT_BINARY, "pull", stack().registry("anon") + "/" + image, "--state",
                       (mount_.path() / "state").string(), "--ca", stack().ca()});
  }
  std::vector<std::string> leftovers() {
    std::vector<std::string> names;
    for (const auto& dir :
         {mount_.path() / "state" / "content" / "ingest", mount_.path() / "state" / "images",
          mount_.path() / "state" / "snapshots"}) {
      std::error_code ec;
      for (const auto& entry : fs::directory_iterator(dir, ec)) {
        const std::string name = entry.path().filename().string();
        if (name.find("staging") != std::string::npos || dir.filename() == "ingest")
          names.push_back(name);
      }
    }
    return names;
  }

  TempDir mount_{"pullagent-diskfull"};
  bool mounted_ = false;
};

TEST_F(DiskFull, ClearErrorNothingLeftBehindAndThePublishedImageIntact) {
  // A small image is published first (about 0.4 MB of blobs and tree).
  auto first = pullState("test/docker:v1");
  ASSERT_EQ(first.exit_code, 0) << first.all();
  const std::string published = stack().image("test/docker:v1")["digest"];
  const fs::path tree = mount_.path() / "state" / "images" / published.substr(7);
  ASSERT_TRUE(fs::exists(imageFile(tree, "etc/os-release")));

  // 2 MiB: the 4 MB layer does not fit while downloading.
  auto download = pullState("test/multi:v1");
  EXPECT_EQ(download.exit_code, 1) << download.all();
  EXPECT_NE(download.err.find("No space left on device"), std::string::npos) << download.err;
  EXPECT_TRUE(leftovers().empty()) << ::testing::PrintToString(leftovers());
  EXPECT_TRUE(fs::exists(imageFile(tree, "etc/os-release")));

  // 6 MiB: the blobs fit, their extraction does not.
  resize("6m");
  auto extract = pullState("test/multi:v1");
  EXPECT_EQ(extract.exit_code, 1) << extract.all();
  EXPECT_NE(extract.err.find("No space left on device"), std::string::npos) << extract.err;
  EXPECT_TRUE(leftovers().empty()) << ::testing::PrintToString(leftovers());
  EXPECT_TRUE(fs::exists(imageFile(tree, "etc/os-release")));

  // Space freed: the same pull succeeds.
  resize("64m");
  auto fine = pullState("test/multi:v1");
  EXPECT_EQ(fine.exit_code, 0) << fine.all();
}

}  // namespace
}  // namespace pullagent::testing
