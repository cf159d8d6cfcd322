// Broken networks and misbehaving servers, injected by the proxy in front of the real
// registry: retry, resume, verification and redirect safety.
#include <gtest/gtest.h>

#include <signal.h>

#include <algorithm>
#include <thread>

#include "tests/integration/pull_fixture.h"

namespace pullagent::testing {
namespace {

using nlohmann::json;

class Faults : public PullTest {
 protected:
  const json& big() { return stack().image("test/multi:v1")["layers"][1]; }
  std::string bigDigest() { return big()["digest"]; }
  int64_t bigSize() { return big()["size"]; }
  std::string anon() { return stack().proxy("proxy_anon"); }

  void fault(const std::string& server, json spec) {
    stack().setFaults(server, json::array({std::move(spec)}));
  }
  static int64_t rangeStart(const json& request) {
    if (!request["range"].is_string())
      return -1;
    return std::stoll(request["range"].get<std::string>().substr(6));
  }
};

TEST_F(Faults, ConnectionResetMidLayerResumesWithRange) {
  for (double fraction : {0.1, 0.5, 0.99}) {
    SCOPED_TRACE(fraction);
    TempDir dest("pullagent-reset");
    auto cut = static_cast<int64_t>(static_cast<double>(bigSize()) * fraction);
    stack().reset(anon());
    fault(anon(), {{"match", bigDigest()}, {"times", 1}, {"action", "reset_at"}, {"at", cut}});
    auto argv = pullCommand(anon() + "/test/multi:v1", {});
    argv[4] = dest.path().string();
    auto result = runProcess(argv);
    ASSERT_EQ(result.exit_code, 0) << result.all();
    auto blob = requests(anon(), bigDigest());
    ASSERT_EQ(blob.size(), 2u);
    EXPECT_GT(rangeStart(blob[1]), 0);
    EXPECT_LE(rangeStart(blob[1]), cut);
    // Bytes sent again after the cut are at most what the client had not stored yet.
    EXPECT_LE(bytesServed(anon(), bigDigest()), bigSize() + (cut - rangeStart(blob[1])));
    EXPECT_TRUE(std::filesystem::exists(dest / "blobs/sha256" / bigDigest().substr(7)));
  }
}

TEST_F(Faults, TruncatedBodyResumes) {
  fault(anon(), {{"match", bigDigest()}, {"times", 1}, {"action", "truncate_at"}, {"at", 100000}});
  auto result = pull(anon() + "/test/multi:v1");
  ASSERT_EQ(result.exit_code, 0) << result.all();
  auto blob = requests(anon(), bigDigest());
  ASSERT_EQ(blob.size(), 2u);
  EXPECT_EQ(rangeStart(blob[1]), 100000);
}

TEST_F(Faults, StalledTransferIsAbandonedAndResumed) {
  fault(
      anon(),
      {{"match", bigDigest()}, {"times", 1}, {"action", "stall_at"}, {"at", 500000}, {"secs", 20}});
  auto started = std::chrono::steady_clock::now();
  auto result = pull(anon() + "/test/multi:v1", {"--stall-timeout", "2"});
  ASSERT_EQ(result.exit_code, 0) << result.all();
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(15));
  EXPECT_NE(result.err.find("stalled"), std::string::npos) << result.err;
  auto blob = requests(anon(), bigDigest());
  ASSERT_EQ(blob.size(), 2u);
  EXPECT_EQ(rangeStart(blob[1]), 500000);
}

TEST_F(Faults, TooManyRequestsHonoursRetryAfterSeconds) {
  fault(anon(), {{"match", "/manifests/"},
                 {"times", 2},
                 {"action", "status"},
                 {"status", 429},
                 {"headers", {{"Retry-After", "1"}}}});
  auto started = std::chrono::steady_clock::now();
  auto result = pull(anon() + "/test/multi:v1");
  ASSERT_EQ(result.exit_code, 0) << result.all();
  EXPECT_GE(std::chrono::steady_clock::now() - started, std::chrono::seconds(2));
  EXPECT_EQ(requests(anon(), "/manifests/").size(), 3u);
  EXPECT_NE(result.err.find("retrying in 1000 ms"), std::string::npos) << result.err;
}

TEST_F(Faults, ServiceUnavailableHonoursRetryAfterDate) {
  // An HTTP-date in the past means "retry now"; a far-future one is capped (not waited for).
  fault(anon(), {{"match", bigDigest()},
                 {"times", 1},
                 {"action", "status"},
                 {"status", 503},
                 {"headers", {{"Retry-After", "Wed, 21 Oct 2015 07:28:00 GMT"}}}});
  auto result = pull(anon() + "/test/multi:v1");
  ASSERT_EQ(result.exit_code, 0) << result.all();
  EXPECT_EQ(requests(anon(), bigDigest()).size(), 2u);
  EXPECT_NE(result.err.find("retrying in 0 ms"), std::string::npos) << result.err;
}

TEST_F(Faults, PersistentServerErrorsGiveUpAsTransient) {
  fault(anon(), {{"match", bigDigest()}, {"times", 100}, {"action", "status"}, {"status", 500}});
  auto result = pull(anon() + "/test/multi:v1", {"--retries", "3"});
  EXPECT_EQ(result.exit_code, 5) << result.all();
  EXPECT_EQ(requests(anon(), bigDigest()).size(), 3u);
  EXPECT_NE(result.err.find("giving up after 3 attempts"), std::string::npos) << result.err;
}

TEST_F(Faults, NotFoundIsNotRetried) {
  fault(anon(), {{"match", "/manifests/"}, {"times", 1}, {"action", "status"}, {"status", 404}});
  auto result = pull(anon() + "/test/multi:v1");
  EXPECT_EQ(result.exit_code, 4) << result.all();
  EXPECT_EQ(requests(anon(), "/manifests/").size(), 1u);
}

TEST_F(Faults, AlteredBytesAreRejectedAndNothingIsKept) {
  fault(anon(), {{"match", bigDigest()}, {"times", 1}, {"action", "corrupt_at"}, {"at", 12345}});
  auto result = pull(anon() + "/test/multi:v1");
  EXPECT_EQ(result.exit_code, 6) << result.all();
  EXPECT_NE(result.err.find("hashes to"), std::string::npos) << result.err;
  EXPECT_FALSE(hasBlob(bigDigest()));
  // The wrong bytes are gone; partial ingests of sibling layers stopped by the failure may
  // stay, as they would after any interruption, for the next pull to resume.
  auto leftovers = ingestFiles();
  EXPECT_EQ(std::count(leftovers.begin(), leftovers.end(), bigDigest().substr(7)), 0);
  // The next pull starts that blob from scratch and succeeds.
  auto again = pull(anon() + "/test/multi:v1");
  ASSERT_EQ(again.exit_code, 0) << again.all();
}

TEST_F(Faults, ServerIgnoringRangeIsHandledBySkipping) {
  stack().setFaults(
      anon(),
      json::array({{{"match", bigDigest()}, {"times", 1}, {"action", "reset_at"}, {"at", 300000}},
                   {{"match", bigDigest()}, {"times", 1}, {"action", "ignore_range"}}}));
  auto result = pull(anon() + "/test/multi:v1");
  ASSERT_EQ(result.exit_code, 0) << result.all();
  EXPECT_NE(result.err.find("server ignored Range"), std::string::npos) << result.err;
  EXPECT_TRUE(hasBlob(bigDigest()));
}

TEST_F(Faults, MismatchedContentRangeIsRejected) {
  stack().setFaults(
      anon(),
      json::array({{{"match", bigDigest()}, {"times", 1}, {"action", "reset_at"}, {"at", 300000}},
                   {{"match", bigDigest()}, {"times", 1}, {"action", "bad_content_range"}}}));
  auto result = pull(anon() + "/test/multi:v1");
  EXPECT_EQ(result.exit_code, 6) << result.all();
  EXPECT_NE(result.err.find("Content-Range"), std::string::npos) << result.err;
  EXPECT_FALSE(hasBlob(bigDigest()));
}

// Parallel ranges (docs/storage.md): the big layer (4 MiB) in four parts of about 1 MiB.
TEST_F(Faults, ABigLayerComesInRangesAndACutRangeIsAskedForItsRestAlone) {
  const int64_t part = bigSize() / 4;  // the parts' sizes differ by a byte at most
  const int64_t third = 2 * part + std::min<int64_t>(bigSize() % 4, 2);
  fault(anon(), {{"match", bigDigest()},
                 {"range_from", third},
                 {"times", 1},
                 {"action", "reset_at"},
                 {"at", 100000}});
  auto result = pull(anon() + "/test/multi:v1", {"--range-part-mib", "1"});
  ASSERT_EQ(result.exit_code, 0) << result.all();
  EXPECT_TRUE(hasBlob(bigDigest()));
  auto blob = requests(anon(), bigDigest());
  ASSERT_EQ(blob.size(), 5u);
  EXPECT_EQ(rangeStart(blob[0]), 0);  // the first range asks first
  std::vector<int64_t> starts;
  for (const auto& request : blob)
    starts.push_back(rangeStart(request));
  std::sort(starts.begin(), starts.end());
  EXPECT_EQ(starts[2], third);
  // The cut range alone was asked again, for its rest: nothing it had delivered came twice.
  EXPECT_GT(starts[3], third);
  EXPECT_LE(starts[3], third + 100000);
  EXPECT_LE(bytesServed(anon(), bigDigest()), bigSize() + (third + 100000 - starts[3]));
  EXPECT_TRUE(ingestFiles().empty());
}

TEST_F(Faults, AServerIgnoringRangeIsAskedOnceForTheWholeBigLayer) {
  fault(anon(), {{"match", bigDigest()}, {"times", 1}, {"action", "ignore_range"}});
  auto result = pull(anon() + "/test/multi:v1", {"--range-part-mib", "1"});
  ASSERT_EQ(result.exit_code, 0) << result.all();
  EXPECT_TRUE(hasBlob(bigDigest()));
  EXPECT_EQ(requests(anon(), bigDigest()).size(), 1u);
  EXPECT_NE(result.err.find("ignores Range"), std::string::npos) << result.err;
}

TEST_F(Faults, RedirectToAnotherHostCarriesNoCredentials) {
  const std::string proxy = stack().proxy("proxy_token");
  stack().setFaults(proxy, json::array({{{"match", "/blobs/"},
                                         {"times", 10},
                                         {"action", "redirect"},
                                         {"host", stack().storage()}}}));
  auto result = pull(proxy + "/test/multi:v1", {"--creds", tokenCreds()});
  ASSERT_EQ(result.exit_code, 0) << result.all();
  auto storage = stack().stats(stack().storage());
  EXPECT_TRUE(storage["violations"].empty()) << storage["violations"];
  EXPECT_EQ(storage["requests"].size(), 4u);  // config and three layers came from storage
  for (const auto& request : storage["requests"])
    EXPECT_FALSE(request["authorization"]);
  // The registry itself did get the token.
  for (const auto& request : requests(proxy, "/blobs/"))
    EXPECT_TRUE(request["authorization"]);
  EXPECT_TRUE(hasBlob(bigDigest()));
}

TEST_F(Faults, ResumeAfterRedirectSendsRangeToTheStorageHost) {
  const std::string proxy = stack().proxy("proxy_token");
  stack().setFaults(
      proxy,
      json::array({{{"match", bigDigest()}, {"times", 1}, {"action", "reset_at"}, {"at", 200000}},
                   {{"match", bigDigest()},
                    {"times", 1},
                    {"action", "redirect"},
                    {"host", stack().storage()}}}));
  auto result = pull(proxy + "/test/multi:v1", {"--creds", tokenCreds()});
  ASSERT_EQ(result.exit_code, 0) << result.all();
  auto storage = stack().stats(stack().storage())["requests"];
  ASSERT_EQ(storage.size(), 1u);
  // A reset may discard bytes in flight, so the resume point is somewhere up to the cut.
  auto resumed = rangeStart(storage[0]);
  EXPECT_GT(resumed, 0);
  EXPECT_LE(resumed, 200000);
  EXPECT_EQ(rangeStart(requests(proxy, bigDigest())[1]), resumed);  // asked the registry first
  EXPECT_FALSE(storage[0]["authorization"]);
}

TEST_F(Faults, RedirectFromHttpsToHttpIsRefused) {
  const std::string proxy = stack().proxy("proxy_token");
  stack().setFaults(proxy, json::array({{{"match", bigDigest()},
                                         {"times", 10},
                                         {"action", "redirect"},
                                         {"host", stack().storageHttp()}}}));
  auto result = pull(proxy + "/test/multi:v1", {"--creds", tokenCreds()});
  EXPECT_EQ(result.exit_code, 6) << result.all();
  EXPECT_NE(result.err.find("refusing redirect from https to plain http"), std::string::npos)
      << result.err;
  EXPECT_TRUE(stack().stats(stack().storage())["requests"].empty());
}

TEST_F(Faults, KilledProcessResumesOnTheNextRun) {
  // The big layer stalls after 1 MB; the pull is SIGKILLed while waiting, then run again.
  fault(anon(), {{"match", bigDigest()},
                 {"times", 1},
                 {"action", "stall_at"},
                 {"at", 1048576},
                 {"secs", 30}});
  {
    BackgroundProcess first(pullCommand(anon() + "/test/multi:v1", {"--stall-timeout", "60"}));
    for (int i = 0; i < 200 && bytesServed(anon(), bigDigest()) < 1048576; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // let the bytes reach disk
    first.kill(SIGKILL);
    EXPECT_EQ(first.wait(), 128 + SIGKILL);
  }
  EXPECT_FALSE(hasBlob(bigDigest()));
  auto result = pull(anon() + "/test/multi:v1");
  ASSERT_EQ(result.exit_code, 0) << result.all();
  auto blob = requests(anon(), bigDigest());
  ASSERT_EQ(blob.size(), 2u);
  EXPECT_EQ(rangeStart(blob[1]), 1048576);
  EXPECT_NE(result.err.find("resuming at"), std::string::npos) << result.err;
  EXPECT_TRUE(hasBlob(bigDigest()));
}

}  // namespace
}  // namespace pullagent::testing
