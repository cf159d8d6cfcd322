#include <gtest/gtest.h>

#include <algorithm>

#include "puller/oci/sha256.h"
#include "puller/registry/registry_client.h"
#include "tests/support/fake_clock.h"
#include "tests/support/fixed_random.h"
#include "tests/support/streaming_http.h"
#include "tests/support/temp_dir.h"

namespace pullagent::puller {
namespace {

using testing::respond;
using testing::stream;
using testing::StreamingHttp;

const char* const kManifestType = "application/vnd.oci.image.manifest.v1+json";

// A registry client over one mirror (its own fake connection and anonymous authorizer, a
// header of its own, ?ns=reg.io) and the origin reg.io (Basic credentials).
class RegistryMirrors : public ::testing::Test {
 protected:
  RegistryMirrors() {
    auto store = ContentStore::open(dir_.path() / "content");
    EXPECT_TRUE(store.ok());
    store_ = std::move(store.value());
    policy_.initial_backoff = std::chrono::milliseconds(100);
  }

  RegistrySource mirrorSource(bool resolve = true) {
    RegistrySource source;
    source.host = "mirror.local:5000";
    source.http = &mirror_;
    source.authorizer = &mirror_authorizer_;
    source.headers = {{"X-Mirror-Key", "k1"}};
    source.ns = "reg.io";
    source.resolve = resolve;
    return source;
  }
  RegistrySource originSource() {
    RegistrySource source;
    source.host = "reg.io";
    source.http = &origin_;
    source.authorizer = &origin_authorizer_;
    source.origin = true;
    return source;
  }
  RegistryClient client(bool mirror_resolves = true) {
    return RegistryClient(clock_, random_, policy_, "app",
                          {mirrorSource(mirror_resolves), originSource()}, &throttle_, &tally_);
  }
  static Descriptor blobOf(const std::string& bytes) {
    return Descriptor{"application/vnd.oci.image.layer.v1.tar+gzip",
                      Sha256::of(bytes),
                      static_cast<int64_t>(bytes.size()),
                      std::nullopt,
                      {},
                      {}};
  }
  static std::string bytes(size_t size, char first = 'a') {
    std::string out(size, '\0');
    for (size_t i = 0; i < size; ++i)
      out[i] = static_cast<char>(first + static_cast<char>((i * 7) % 26));
    return out;
  }
  static std::string header(const testing::ScriptedHttp::Sent& sent, const std::string& name) {
    for (const auto& field : sent.headers) {
      if (field.name == name)
        return field.value;
    }
    return "";
  }
  std::string storedBlob(const Descriptor& blob) {
    auto read = store_->readBlob(blob.digest, blob.size);
    return read ? read.value() : "";
  }
  // The origin asks for Basic credentials on its first request.
  void expectOriginChallenge() {
    origin_.script.expect([](const HttpRequest&) {
      return respond(401, "", {{"WWW-Authenticate", R"(Basic realm="reg.io")"}});
    });
  }

  testing::TempDir dir_;
  testing::FakeClock clock_;
  testing::FixedRandom random_{0.5};
  StreamingHttp mirror_;
  StreamingHttp origin_;
  TokenCache mirror_tokens_{clock_};
  TokenCache origin_tokens_{clock_};
  Authorizer mirror_authorizer_{mirror_, clock_, mirror_tokens_, RegistryCredentials{}, false};
  Authorizer origin_authorizer_{origin_, clock_, origin_tokens_,
                                RegistryCredentials{"user", Secret("origin-password"), nullptr},
                                false};
  RetryPolicy policy_;
  RegistryThrottle throttle_{clock_};
  SourceTally tally_;
  std::unique_ptr<ContentStore> store_;
};

TEST_F(RegistryMirrors, ABlobTheMirrorHasComesFromItWithTheRegistryNamedAndItsOwnHeader) {
  const std::string content = bytes(5000);
  const Descriptor blob = blobOf(content);
  mirror_.script.expect(stream(200, content));
  ASSERT_TRUE(client().fetchBlob(blob, *store_, nullptr, clock_.context()).ok());
  ASSERT_EQ(mirror_.script.sent().size(), 1u);
  const auto& sent = mirror_.script.sent()[0];
  EXPECT_EQ(sent.url, "https://mirror.local:5000/v2/app/blobs/" + blob.digest.str() + "?ns=reg.io");
  EXPECT_EQ(header(sent, "X-Mirror-Key"), "k1");
  EXPECT_EQ(sent.authorization, "");
  EXPECT_TRUE(origin_.script.sent().empty());
  EXPECT_EQ(storedBlob(blob), content);
  const auto totals = tally_.totals();
  EXPECT_EQ(totals.mirror_requests, 1);
  EXPECT_EQ(totals.origin_requests, 0);
  EXPECT_EQ(totals.mirror_bytes, 5000);
}

TEST_F(RegistryMirrors, AMirrorCutMidBlobIsFinishedByTheOriginFromTheByteItStoppedAt) {
  const std::string content = bytes(10000);
  const Descriptor blob = blobOf(content);
  mirror_.script.expect(stream(200, content, {}, 3000));
  expectOriginChallenge();
  origin_.script.expect(
      stream(206, content.substr(3000), {{"Content-Range", "bytes 3000-9999/10000"}}));
  ASSERT_TRUE(client().fetchBlob(blob, *store_, nullptr, clock_.context()).ok());
  ASSERT_EQ(origin_.script.sent().size(), 2u);
  EXPECT_EQ(header(origin_.script.sent()[1], "Range"), "bytes=3000-");
  EXPECT_EQ(origin_.script.sent()[1].url.find("ns="), std::string::npos);
  EXPECT_EQ(storedBlob(blob), content);
  const auto totals = tally_.totals();
  EXPECT_EQ(totals.fallbacks.at("unavailable"), 1);
  EXPECT_EQ(totals.mirror_bytes, 3000);
  EXPECT_EQ(totals.origin_bytes, 7000);
}

TEST_F(RegistryMirrors, BytesFromAMirrorThatDoNotVerifyAreFetchedAgainWholeFromTheOrigin) {
  const std::string content = bytes(4000);
  const Descriptor blob = blobOf(content);
  mirror_.script.expect(stream(200, bytes(4000, 'b')));  // the right size, the wrong bytes
  expectOriginChallenge();
  origin_.script.expect(stream(200, content));
  auto registry = client();
  ASSERT_TRUE(registry.fetchBlob(blob, *store_, nullptr, clock_.context()).ok());
  EXPECT_EQ(header(origin_.script.sent()[1], "Range"), "");  // from byte 0
  EXPECT_EQ(storedBlob(blob), content);
  EXPECT_EQ(tally_.totals().fallbacks.at("digest"), 1);
  EXPECT_EQ(mirror_.script.sent().size(), 1u);
}

TEST_F(RegistryMirrors, AMirrorThatBreaksTheProtocolLeavesNoBytesForTheOriginToResume) {
  const std::string content = bytes(6000);
  const Descriptor blob = blobOf(content);
  // More bytes than the descriptor declares: what it sent so far is not resumed.
  mirror_.script.expect(stream(200, content + "trailing"));
  expectOriginChallenge();
  origin_.script.expect(stream(200, content));
  ASSERT_TRUE(client().fetchBlob(blob, *store_, nullptr, clock_.context()).ok());
  EXPECT_EQ(header(origin_.script.sent()[1], "Range"), "");
  EXPECT_EQ(storedBlob(blob), content);
}

TEST_F(RegistryMirrors, TheOriginsCredentialsNeverReachTheMirror) {
  const std::string first = bytes(1000), second = bytes(1200, 'c');
  for (int i = 0; i < 2; ++i) {
    mirror_.script.expect(
        [](const HttpRequest&) { return respond(404, R"({"errors":[{"code":"BLOB_UNKNOWN"}]})"); });
  }
  expectOriginChallenge();
  origin_.script.expect(stream(200, first));
  origin_.script.expect(stream(200, second));
  auto registry = client();
  ASSERT_TRUE(registry.fetchBlob(blobOf(first), *store_, nullptr, clock_.context()).ok());
  // Now the origin's Basic credentials are sent up front; the mirror still gets none.
  ASSERT_TRUE(registry.fetchBlob(blobOf(second), *store_, nullptr, clock_.context()).ok());
  ASSERT_EQ(origin_.script.sent().size(), 3u);
  EXPECT_TRUE(origin_.script.sent()[2].authorization.starts_with("Basic "));
  ASSERT_EQ(mirror_.script.sent().size(), 2u);
  for (const auto& sent : mirror_.script.sent())
    EXPECT_EQ(sent.authorization, "") << sent.url;
  EXPECT_EQ(tally_.totals().fallbacks.at("not_found"), 2);
}

TEST_F(RegistryMirrors, AMirrorsOwnConfiguredAuthorizationIsTheOnlyOneItGets) {
  const std::string content = bytes(800);
  mirror_.script.expect(stream(200, content));
  auto mirror = mirrorSource();
  mirror.authorization = Secret("Bearer mirror-own");
  RegistryClient registry(clock_, random_, policy_, "app", {mirror, originSource()}, &throttle_,
                          &tally_);
  ASSERT_TRUE(registry.fetchBlob(blobOf(content), *store_, nullptr, clock_.context()).ok());
  EXPECT_EQ(mirror_.script.sent().at(0).authorization, "Bearer mirror-own");
}

TEST_F(RegistryMirrors, ATagIsResolvedOnlyWhereResolvingIsAllowedAndDigestsAnywhere) {
  const std::string manifest = R"({"schemaVersion":2,"mediaType":"x"})";
  const Digest digest = Sha256::of(manifest);
  auto registry = client(/*mirror_resolves=*/false);
  expectOriginChallenge();
  origin_.script.expect([&](const HttpRequest&) {
    return respond(200, manifest, {{"Content-Type", kManifestType}});
  });
  auto by_tag = registry.fetchManifest("v1", std::nullopt, clock_.context());
  ASSERT_TRUE(by_tag.ok()) << by_tag.error().describe();
  EXPECT_TRUE(mirror_.script.sent().empty());

  mirror_.script.expect([&](const HttpRequest&) {
    return respond(200, manifest, {{"Content-Type", kManifestType}});
  });
  auto by_digest = registry.fetchManifest(digest.str(), digest, clock_.context());
  ASSERT_TRUE(by_digest.ok()) << by_digest.error().describe();
  EXPECT_EQ(mirror_.script.sent().size(), 1u);
  EXPECT_EQ(origin_.script.sent().size(), 2u);
}

TEST_F(RegistryMirrors, AManifestFromAMirrorThatIsNotTheOneAskedForFallsThrough) {
  const std::string manifest = R"({"schemaVersion":2,"mediaType":"x"})";
  const Digest digest = Sha256::of(manifest);
  mirror_.script.expect([&](const HttpRequest&) {
    return respond(200, R"({"schemaVersion":2,"mediaType":"forged"})",
                   {{"Content-Type", kManifestType}});
  });
  expectOriginChallenge();
  origin_.script.expect([&](const HttpRequest&) {
    return respond(200, manifest, {{"Content-Type", kManifestType}});
  });
  auto fetched = client().fetchManifest(digest.str(), digest, clock_.context());
  ASSERT_TRUE(fetched.ok()) << fetched.error().describe();
  EXPECT_EQ(fetched->bytes, manifest);
  EXPECT_EQ(tally_.totals().fallbacks.at("digest"), 1);
}

TEST_F(RegistryMirrors, AMirrorThatAskedForQuietIsPassedOverUntilItsPauseEnds) {
  const std::string first = bytes(700), second = bytes(900, 'd'), third = bytes(300, 'e');
  mirror_.script.expect([](const HttpRequest&) {
    return respond(429, R"({"errors":[{"code":"TOOMANYREQUESTS"}]})", {{"Retry-After", "30"}});
  });
  expectOriginChallenge();
  origin_.script.expect(stream(200, first));
  origin_.script.expect(stream(200, second));
  auto registry = client();
  const auto start = clock_.now();
  ASSERT_TRUE(registry.fetchBlob(blobOf(first), *store_, nullptr, clock_.context()).ok());
  ASSERT_TRUE(registry.fetchBlob(blobOf(second), *store_, nullptr, clock_.context()).ok());
  EXPECT_LT(clock_.now() - start, std::chrono::seconds(30));  // nobody waited for the mirror
  EXPECT_EQ(mirror_.script.sent().size(), 1u);
  EXPECT_EQ(tally_.totals().fallbacks.at("throttled"), 2);
  // Once the pause is over the mirror is asked again.
  clock_.advance(std::chrono::seconds(31));
  mirror_.script.expect(stream(200, third));
  ASSERT_TRUE(registry.fetchBlob(blobOf(third), *store_, nullptr, clock_.context()).ok());
  EXPECT_EQ(mirror_.script.sent().size(), 2u);
}

TEST_F(RegistryMirrors, AMirrorThatCannotBeReachedCostsOneTryNotTheRetryLoop) {
  const std::string content = bytes(1500);
  mirror_.script.expect([](const HttpRequest&) -> HttpResponse {
    throw makeError(ErrorCode::kUnavailable, "connect to mirror.local:5000 refused");
  });
  expectOriginChallenge();
  origin_.script.expect(stream(200, content));
  const auto start = clock_.now();
  ASSERT_TRUE(client().fetchBlob(blobOf(content), *store_, nullptr, clock_.context()).ok());
  EXPECT_EQ(clock_.now() - start, std::chrono::nanoseconds(0));  // no backoff
  EXPECT_EQ(mirror_.script.sent().size(), 1u);
}

// A mirror that stalled is not waited for again by the same pull: the later blobs go straight
// to the origin, each counted as passed over.
TEST_F(RegistryMirrors, AMirrorThatStalledIsPassedOverForTheRestOfThePull) {
  const std::string first = bytes(700), second = bytes(900, 'd'), third = bytes(300, 'e');
  mirror_.script.expect([](const HttpRequest&) -> HttpResponse {
    throw makeError(ErrorCode::kTimeout, "less than 8192 bytes/s over the last 30 s");
  });
  expectOriginChallenge();
  origin_.script.expect(stream(200, first));
  origin_.script.expect(stream(200, second));
  origin_.script.expect(stream(200, third));
  auto registry = client();
  for (const auto* content : {&first, &second, &third})
    ASSERT_TRUE(registry.fetchBlob(blobOf(*content), *store_, nullptr, clock_.context()).ok());
  EXPECT_EQ(mirror_.script.sent().size(), 1u);
  EXPECT_EQ(tally_.totals().fallbacks.at("timeout"), 1);
  EXPECT_EQ(tally_.totals().fallbacks.at("passed_over"), 2);
  // Another pull (another client) asks the mirror again.
  mirror_.script.expect(stream(200, bytes(100, 'f')));
  ASSERT_TRUE(client().fetchBlob(blobOf(bytes(100, 'f')), *store_, nullptr, clock_.context()).ok());
  EXPECT_EQ(mirror_.script.sent().size(), 2u);
}

TEST(FallbackReason, EveryReasonIsALabelTheMetricsKnow) {
  for (int code = 0; code <= static_cast<int>(ErrorCode::kInternal); ++code) {
    Error error = makeError(static_cast<ErrorCode>(code), "x");
    for (bool retry_after : {false, true}) {
      if (retry_after)
        error.retry_after = std::chrono::milliseconds(1000);
      const auto reason = fallbackReason(error);
      EXPECT_NE(std::find(kFallbackReasons.begin(), kFallbackReasons.end(), reason),
                kFallbackReasons.end())
          << reason;
    }
  }
}

}  // namespace
}  // namespace pullagent::puller
