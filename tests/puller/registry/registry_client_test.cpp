#include "puller/registry/registry_client.h"

#include <gtest/gtest.h>

#include "puller/oci/sha256.h"
#include "tests/support/fake_clock.h"
#include "tests/support/fixed_random.h"
#include "tests/support/scripted_http.h"
#include "tests/support/streaming_http.h"
#include "tests/support/temp_dir.h"

namespace pullagent::puller {
namespace {

using testing::respond;
using testing::ScriptedHttp;
using testing::stream;
using testing::StreamingHttp;

constexpr const char* kBlobUrl = "https://reg.io/v2/app/blobs/";

class RegistryClientTest : public ::testing::Test {
 protected:
  RegistryClientTest() {
    auto store = ContentStore::open(dir_.path() / "content");
    EXPECT_TRUE(store.ok());
    store_ = std::move(store.value());
    policy_.initial_backoff = std::chrono::milliseconds(100);
  }
  RegistryClient client() {
    return RegistryClient(http_, authorizer_, clock_, random_, policy_, {"https", "reg.io", "app"});
  }
  static Descriptor blobOf(const std::string& bytes) {
    return Descriptor{"application/vnd.oci.image.layer.v1.tar+gzip",
                      Sha256::of(bytes),
                      static_cast<int64_t>(bytes.size()),
                      std::nullopt,
                      {},
                      {}};
  }
  static std::string bytes(size_t size) {
    std::string out(size, '\0');
    for (size_t i = 0; i < size; ++i)
      out[i] = static_cast<char>('a' + (i * 7) % 26);
    return out;
  }
  std::string rangeOf(size_t request) const {
    for (const auto& header : http_.script.sent().at(request).headers) {
      if (header.name == "Range")
        return header.value;
    }
    return "";
  }

  testing::TempDir dir_;
  testing::FakeClock clock_;
  testing::FixedRandom random_{0.5};
  StreamingHttp http_;
  TokenCache tokens_{clock_};
  Authorizer authorizer_{http_, clock_, tokens_, RegistryCredentials{}, false};
  RetryPolicy policy_;
  std::unique_ptr<ContentStore> store_;
};

TEST_F(RegistryClientTest, UnauthorizedFetchesATokenAndSendsTheRequestOnceMore) {
  const std::string manifest =
      R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"})";
  http_.script.expect([](const HttpRequest&) {
    return respond(
        401, R"({"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]})",
        {{"WWW-Authenticate",
          R"(Bearer realm="https://auth.reg.io/token",service="reg.io",scope="repository:app:pull")"}});
  });
  http_.script.expect(
      [](const HttpRequest&) { return respond(200, R"({"token":"t-1","expires_in":300})"); });
  http_.script.expect([&](const HttpRequest&) {
    return respond(200, manifest, {{"Content-Type", "application/vnd.oci.image.manifest.v1+json"}});
  });

  auto registry = client();
  auto fetched = registry.fetchManifest("v1", std::nullopt, clock_.context());
  ASSERT_TRUE(fetched.ok()) << fetched.error().message;
  EXPECT_EQ(fetched->digest, Sha256::of(manifest));
  EXPECT_EQ(fetched->media_type, "application/vnd.oci.image.manifest.v1+json");
  const auto& sent = http_.script.sent();
  ASSERT_EQ(sent.size(), 3u);
  EXPECT_EQ(sent[0].url, "https://reg.io/v2/app/manifests/v1");
  EXPECT_EQ(sent[0].authorization, "");
  EXPECT_EQ(sent[1].url.rfind("https://auth.reg.io:443/token?", 0), 0u) << sent[1].url;
  EXPECT_NE(sent[1].url.find("scope=repository%3Aapp%3Apull"), std::string::npos) << sent[1].url;
  EXPECT_EQ(sent[2].url, "https://reg.io/v2/app/manifests/v1");
  EXPECT_EQ(sent[2].authorization, "Bearer t-1");
}

TEST_F(RegistryClientTest, ATagResolvesWithOneHeadRequest) {
  const Digest digest = Sha256::of("the manifest");
  http_.script.expect([&](const HttpRequest&) {
    return respond(200, "", {{"Docker-Content-Digest", digest.str()}});
  });
  auto resolved = client().resolveTag("moving", clock_.context());
  ASSERT_TRUE(resolved.ok()) << resolved.error().message;
  EXPECT_EQ(resolved.value(), digest);
  const auto& sent = http_.script.sent();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].method, "HEAD");
  EXPECT_EQ(sent[0].url, "https://reg.io/v2/app/manifests/moving");
}

// A registry that refuses HEAD, or answers it without a usable digest, costs a GET instead; the
// digest is then that of the bytes.
TEST_F(RegistryClientTest, ATagResolvesWithAGetWhereHeadGivesNoDigest) {
  const std::string manifest = R"({"schemaVersion":2})";
  for (const HttpResponse& head :
       {respond(405, ""), respond(501, ""), respond(200, ""),
        respond(200, "", {{"Docker-Content-Digest", "sha256:not-hex"}})}) {
    http_.script.expect([=](const HttpRequest&) { return head; });
    http_.script.expect([&](const HttpRequest&) {
      return respond(200, manifest,
                     {{"Content-Type", "application/vnd.oci.image.manifest.v1+json"}});
    });
  }
  for (int round = 0; round < 4; ++round) {
    auto resolved = client().resolveTag("moving", clock_.context());
    ASSERT_TRUE(resolved.ok()) << round << ": " << resolved.error().message;
    EXPECT_EQ(resolved.value(), Sha256::of(manifest)) << round;
  }
  const auto& sent = http_.script.sent();
  ASSERT_EQ(sent.size(), 8u);
  for (size_t i = 0; i < sent.size(); ++i)
    EXPECT_EQ(sent[i].method, i % 2 == 0 ? "HEAD" : "GET") << i;
}

TEST_F(RegistryClientTest, AMissingTagIsNotFoundWithoutAGet) {
  http_.script.expect([](const HttpRequest&) { return respond(404, ""); });
  auto resolved = client().resolveTag("gone", clock_.context());
  ASSERT_FALSE(resolved.ok());
  EXPECT_EQ(resolved.error().code, ErrorCode::kNotFound) << resolved.error().message;
  EXPECT_EQ(http_.script.sent().size(), 1u);
}

TEST_F(RegistryClientTest, ATokenTheRegistryRefusesTwiceIsAnAuthenticationError) {
  const auto challenge = HttpHeader{"WWW-Authenticate",
                                    R"(Bearer realm="https://auth.reg.io/token",service="reg.io")"};
  http_.script.expect([&](const HttpRequest&) { return respond(401, "", {challenge}); });
  http_.script.expect([](const HttpRequest&) { return respond(200, R"({"token":"t-1"})"); });
  http_.script.expect([&](const HttpRequest&) { return respond(401, "", {challenge}); });
  http_.script.expect([](const HttpRequest&) { return respond(200, R"({"token":"t-2"})"); });
  http_.script.expect([&](const HttpRequest&) { return respond(401, "", {challenge}); });

  auto registry = client();
  auto fetched = registry.fetchManifest("v1", std::nullopt, clock_.context());
  ASSERT_FALSE(fetched.ok());
  EXPECT_EQ(fetched.error().code, ErrorCode::kUnauthenticated) << fetched.error().message;
}

TEST_F(RegistryClientTest, ADroppedTransferResumesWithRangeAndVerifies) {
  const std::string content = bytes(10000);
  const Descriptor blob = blobOf(content);
  http_.script.expect(stream(200, content, {}, 4000));
  http_.script.expect([&](const HttpRequest& request) {
    return stream(206, content.substr(4000), {{"Content-Range", "bytes 4000-9999/10000"}})(request);
  });

  auto registry = client();
  auto status = registry.fetchBlob(blob, *store_, nullptr, clock_.context());
  ASSERT_TRUE(status.ok()) << status.error().message;
  EXPECT_TRUE(store_->contains(blob.digest, blob.size));
  EXPECT_EQ(testing::readFile(store_->blobPath(blob.digest)), content);
  ASSERT_EQ(http_.script.sent().size(), 2u);
  EXPECT_EQ(http_.script.sent()[0].url, kBlobUrl + blob.digest.str());
  EXPECT_EQ(rangeOf(0), "");
  EXPECT_EQ(rangeOf(1), "bytes=4000-");
}

TEST_F(RegistryClientTest, RangeNotSatisfiableStartsTheBlobOver) {
  const std::string content = bytes(5000);
  const Descriptor blob = blobOf(content);
  http_.script.expect(stream(200, content, {}, 3000));
  http_.script.expect([](const HttpRequest&) { return respond(416, ""); });
  http_.script.expect(stream(200, content));

  auto registry = client();
  auto status = registry.fetchBlob(blob, *store_, nullptr, clock_.context());
  ASSERT_TRUE(status.ok()) << status.error().message;
  EXPECT_EQ(testing::readFile(store_->blobPath(blob.digest)), content);
  ASSERT_EQ(http_.script.sent().size(), 3u);
  EXPECT_EQ(rangeOf(1), "bytes=3000-");
  EXPECT_EQ(rangeOf(2), "");
}

TEST_F(RegistryClientTest, ContentThatDoesNotHashToTheDigestNeverBecomesVisible) {
  const std::string content = bytes(3000);
  const Descriptor blob = blobOf(content);
  std::string tampered = content;
  tampered[1500] = '!';
  http_.script.expect(stream(200, tampered));

  auto registry = client();
  auto status = registry.fetchBlob(blob, *store_, nullptr, clock_.context());
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code, ErrorCode::kDigestMismatch) << status.error().message;
  EXPECT_FALSE(store_->contains(blob.digest, blob.size));
  EXPECT_FALSE(std::filesystem::exists(store_->blobPath(blob.digest)));
}

TEST_F(RegistryClientTest, ResumedBytesThatFailVerificationAreFetchedOnceMoreFromTheStart) {
  const std::string content = bytes(6000);
  const Descriptor blob = blobOf(content);
  std::string changed = content;
  changed[100] = '!';  // an earlier pull kept wrong bytes; the registry's are right
  policy_.max_attempts = 1;
  http_.script.expect(stream(200, changed, {}, 2000));
  auto earlier = client().fetchBlob(blob, *store_, nullptr, clock_.context());
  ASSERT_FALSE(earlier.ok());
  EXPECT_EQ(earlier.error().code, ErrorCode::kUnavailable);

  http_.script.expect([&](const HttpRequest& request) {
    return stream(206, content.substr(2000), {{"Content-Range", "bytes 2000-5999/6000"}})(request);
  });
  http_.script.expect(stream(200, content));
  auto status = client().fetchBlob(blob, *store_, nullptr, clock_.context());
  ASSERT_TRUE(status.ok()) << status.error().message;
  EXPECT_EQ(testing::readFile(store_->blobPath(blob.digest)), content);
  ASSERT_EQ(http_.script.sent().size(), 3u);
  EXPECT_EQ(rangeOf(1), "bytes=2000-");
  EXPECT_EQ(rangeOf(2), "");
}

TEST_F(RegistryClientTest, ANotFoundBlobIsNotRetried) {
  const Descriptor blob = blobOf(bytes(100));
  http_.script.expect([](const HttpRequest&) {
    return respond(404,
                   R"({"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry"}]})");
  });

  auto registry = client();
  auto status = registry.fetchBlob(blob, *store_, nullptr, clock_.context());
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(http_.script.sent().size(), 1u);
  EXPECT_TRUE(clock_.sleeps().empty());
}

TEST_F(RegistryClientTest, AServerErrorIsRetriedWithBackoff) {
  const std::string content = bytes(500);
  const Descriptor blob = blobOf(content);
  http_.script.expect([](const HttpRequest&) { return respond(503, ""); });
  http_.script.expect(stream(200, content));

  auto registry = client();
  auto status = registry.fetchBlob(blob, *store_, nullptr, clock_.context());
  ASSERT_TRUE(status.ok()) << status.error().message;
  EXPECT_EQ(clock_.sleeps().size(), 1u);
}

TEST_F(RegistryClientTest, ATooManyRequestsPausesEveryPullSharingTheThrottle) {
  RegistryThrottle throttle(clock_);
  const std::string content = bytes(500);
  const Descriptor blob = blobOf(content);
  http_.script.expect([](const HttpRequest&) {
    return respond(429, R"({"errors":[{"code":"TOOMANYREQUESTS"}]})", {{"Retry-After", "7"}});
  });
  http_.script.expect(stream(200, content));
  RegistryClient first(http_, authorizer_, clock_, random_, policy_, {"https", "reg.io", "app"},
                       &throttle);
  const auto start = clock_.now();
  ASSERT_TRUE(first.fetchBlob(blob, *store_, nullptr, clock_.context()).ok());
  EXPECT_GE(clock_.now() - start, std::chrono::seconds(7));
  EXPECT_EQ(throttle.stats("reg.io").pauses, 1);

  // Another pull of the same registry (another site) asks while the pause is in force: it waits
  // for the rest of it before its first request, instead of being refused on its own.
  throttle.pause("reg.io", std::chrono::seconds(5));
  const std::string manifest = R"({"schemaVersion":2})";
  http_.script.expect([&](const HttpRequest&) {
    return respond(200, manifest, {{"Content-Type", "application/vnd.oci.image.manifest.v1+json"}});
  });
  RegistryClient second(http_, authorizer_, clock_, random_, policy_, {"https", "reg.io", "other"},
                        &throttle);
  const auto asked = clock_.now();
  ASSERT_TRUE(second.fetchManifest("v1", std::nullopt, clock_.context()).ok());
  EXPECT_GE(clock_.now() - asked, std::chrono::seconds(5));
  EXPECT_EQ(http_.script.sent().size(), 3u);  // no request was sent during the pause
}

}  // namespace
}  // namespace pullagent::puller

namespace pullagent::puller {
namespace {

class RegistryReferrersTest : public ::testing::Test {
 protected:
  RegistryClient client() {
    return RegistryClient(http_, authorizer_, clock_, random_, policy_, {"https", "reg.io", "app"});
  }
  const Digest subject_ = Digest::parse("sha256:" + std::string(64, 'c')).value();
  testing::FakeClock clock_;
  testing::FixedRandom random_{0.5};
  StreamingHttp http_;
  TokenCache tokens_{clock_};
  Authorizer authorizer_{http_, clock_, tokens_, RegistryCredentials{}, false};
  RetryPolicy policy_;
};

TEST_F(RegistryReferrersTest, PagesAreFollowedOnTheSameHostAndBounded) {
  // Each page links to the next, past the bound.
  for (int page = 0; page < RegistryClient::kMaxReferrerPages + 2; ++page) {
    http_.script.expect([page](const HttpRequest&) {
      return respond(200, "page " + std::to_string(page),
                     {{"Content-Type", "application/vnd.oci.image.index.v1+json"},
                      {"Link", "</v2/app/referrers/first>; rel=\"first\", " +
                                   std::string(page == 1 ? "<https://reg.io" : "<") +
                                   "/v2/app/referrers/x?n=" + std::to_string(page + 1) +
                                   ">; rel=" + std::string(page == 2 ? "next" : "\"next\"")}});
    });
  }
  auto registry = client();
  auto pages = registry.fetchReferrers(subject_, "application/vnd.cncf.notary.signature",
                                       Context{&clock_, {}, std::nullopt});
  ASSERT_TRUE(pages.ok()) << pages.error().message;
  ASSERT_TRUE(pages->has_value());
  ASSERT_EQ((*pages)->size(), static_cast<size_t>(RegistryClient::kMaxReferrerPages));
  EXPECT_EQ((*pages)->back(), "page 3");
  const auto& sent = http_.script.sent();
  EXPECT_EQ(sent[0].url, "https://reg.io/v2/app/referrers/" + subject_.str() +
                             "?artifactType=application/vnd.cncf.notary.signature");
  EXPECT_EQ(sent[1].url, "https://reg.io/v2/app/referrers/x?n=1");
  EXPECT_EQ(sent[2].url, "https://reg.io/v2/app/referrers/x?n=2");  // given absolute
  EXPECT_EQ(sent[3].url, "https://reg.io/v2/app/referrers/x?n=3");  // rel unquoted
}

TEST_F(RegistryReferrersTest, NoApiIsNoAnswerAndALinkElsewhereIsNotFollowed) {
  http_.script.expect([](const HttpRequest&) { return respond(404, "404 page not found"); });
  auto registry = client();
  const Context ctx{&clock_, {}, std::nullopt};
  auto none = registry.fetchReferrers(subject_, "t", ctx);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  http_.script.expect([](const HttpRequest&) {
    return respond(200, "{}", {{"Link", "<https://elsewhere.example/v2/x>; rel=\"next\""}});
  });
  auto one = registry.fetchReferrers(subject_, "t", ctx);
  ASSERT_TRUE(one.ok());
  ASSERT_TRUE(one->has_value());
  EXPECT_EQ((*one)->size(), 1u);
  EXPECT_EQ(http_.script.pending(), 0u);
}

}  // namespace
}  // namespace pullagent::puller
