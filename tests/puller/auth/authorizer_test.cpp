#include "puller/auth/authorizer.h"

#include <gtest/gtest.h>

#include "tests/support/fake_clock.h"
#include "tests/support/scripted_http.h"

namespace pullagent::puller {
namespace {

using testing::respond;
using testing::ScriptedHttp;

const std::string kScope = "repository:app:pull";

class AuthorizerTest : public ::testing::Test {
 protected:
  Url registry() { return Url::parse("https://reg.io/v2/app/manifests/v1").value(); }
  static HttpResponseHead challenge(const std::string& value) {
    HttpResponseHead head;
    head.status = 401;
    head.headers.push_back({"WWW-Authenticate", value});
    return head;
  }
  static ScriptedHttp::Handler tokenAnswer(std::string body) {
    return [body](const HttpRequest&) { return respond(200, body); };
  }
  std::unique_ptr<Authorizer> make(RegistryCredentials credentials = {}, bool insecure = false) {
    return std::make_unique<Authorizer>(http_, clock_, cache_, std::move(credentials), insecure);
  }
  void learnBearer(Authorizer& authorizer, const std::string& realm = "https://auth.reg.io/token") {
    ASSERT_TRUE(authorizer
                    .onUnauthorized(registry(),
                                    challenge("Bearer realm=\"" + realm + "\",service=\"reg.io\""),
                                    kScope, std::nullopt)
                    .ok());
  }

  testing::FakeClock clock_;
  ScriptedHttp http_;
  TokenCache cache_{clock_};
};

TEST_F(AuthorizerTest, NothingIsSentBeforeTheRegistryAsks) {
  auto authorizer = make({"user", Secret("pw")});
  auto header = authorizer->authorize(registry(), kScope, clock_.context());
  ASSERT_TRUE(header.ok());
  EXPECT_FALSE(header->has_value());
  EXPECT_TRUE(http_.sent().empty());
}

TEST_F(AuthorizerTest, BearerTokenFetchedWithBasicCredentialsAndCached) {
  auto authorizer = make({"user", Secret("pw")});
  learnBearer(*authorizer);
  http_.expect(tokenAnswer(R"({"token":"tok-1","expires_in":300})"));
  auto first = authorizer->authorize(registry(), kScope, clock_.context());
  ASSERT_TRUE(first.ok()) << first.error().message;
  EXPECT_EQ((*first)->revealForWire(), "Bearer tok-1");
  ASSERT_EQ(http_.sent().size(), 1u);
  EXPECT_EQ(
      http_.sent()[0].url,
      "https://auth.reg.io:443/token?service=reg.io&scope=repository%3Aapp%3Apull&account=user");
  EXPECT_EQ(http_.sent()[0].authorization, "Basic dXNlcjpwdw==");  // user:pw

  auto second = authorizer->authorize(registry(), kScope, clock_.context());
  EXPECT_EQ((*second)->revealForWire(), "Bearer tok-1");
  EXPECT_EQ(http_.sent().size(), 1u);  // from the cache

  clock_.advance(std::chrono::seconds(271));  // past exp - 30 s
  http_.expect(tokenAnswer(R"({"access_token":"tok-2"})"));
  auto third = authorizer->authorize(registry(), kScope, clock_.context());
  EXPECT_EQ((*third)->revealForWire(), "Bearer tok-2");
}

TEST_F(AuthorizerTest, ExpiresInDefaultsToAndIsClampedToSixtySeconds) {
  auto authorizer = make();
  learnBearer(*authorizer);
  http_.expect(tokenAnswer(R"({"token":"short","expires_in":5})"));
  ASSERT_TRUE(authorizer->authorize(registry(), kScope, clock_.context()).ok());
  clock_.advance(std::chrono::seconds(53));  // 60 s lifetime, refreshed 6 s early
  ASSERT_TRUE(authorizer->authorize(registry(), kScope, clock_.context()).ok());
  EXPECT_EQ(http_.sent().size(), 1u);
  clock_.advance(std::chrono::seconds(2));
  http_.expect(tokenAnswer(R"({"token":"next"})"));
  ASSERT_TRUE(authorizer->authorize(registry(), kScope, clock_.context()).ok());
  EXPECT_EQ(http_.sent().size(), 2u);
  EXPECT_EQ(http_.sent()[0].authorization, "");  // anonymous token request
}

TEST_F(AuthorizerTest, IssuedAtShortensTheLifetime) {
  auto authorizer = make();
  learnBearer(*authorizer);
  // FakeClock's wall time is 2026-01-01T00:00:00Z; issued 200 s before, valid 300 s.
  http_.expect(tokenAnswer(R"({"token":"t","expires_in":300,"issued_at":"2025-12-31T23:56:40Z"})"));
  ASSERT_TRUE(authorizer->authorize(registry(), kScope, clock_.context()).ok());
  clock_.advance(std::chrono::seconds(91));  // 100 s left -> refreshed 10 s early
  http_.expect(tokenAnswer(R"({"token":"t2"})"));
  ASSERT_TRUE(authorizer->authorize(registry(), kScope, clock_.context()).ok());
  EXPECT_EQ(http_.sent().size(), 2u);
}

TEST_F(AuthorizerTest, RefusedTokenIsDroppedAndRefetched) {
  auto authorizer = make();
  learnBearer(*authorizer);
  http_.expect(tokenAnswer(R"({"token":"old","expires_in":3600})"));
  auto sent = authorizer->authorize(registry(), kScope, clock_.context()).value();
  ASSERT_TRUE(authorizer
                  ->onUnauthorized(registry(),
                                   challenge("Bearer realm=\"https://auth.reg.io/token\","
                                             "service=\"reg.io\",error=\"invalid_token\""),
                                   kScope, sent)
                  .ok());
  http_.expect(tokenAnswer(R"({"token":"new"})"));
  EXPECT_EQ(authorizer->authorize(registry(), kScope, clock_.context())->value().revealForWire(),
            "Bearer new");
}

TEST_F(AuthorizerTest, PlainHttpRealmGetsNoCredentials) {
  auto authorizer = make({"user", Secret("pw")});
  learnBearer(*authorizer, "http://auth.reg.io/token");
  auto header = authorizer->authorize(registry(), kScope, clock_.context());
  ASSERT_FALSE(header.ok());
  EXPECT_EQ(header.error().code, ErrorCode::kUntrusted);
  EXPECT_TRUE(http_.sent().empty());
}

TEST_F(AuthorizerTest, TokenServerAnswersAreValidated) {
  auto authorizer = make({"user", Secret("pw")});
  learnBearer(*authorizer);
  http_.expect(tokenAnswer(R"({"expires_in":60})"));
  EXPECT_EQ(authorizer->authorize(registry(), kScope, clock_.context()).error().code,
            ErrorCode::kProtocol);
  http_.expect([](const HttpRequest&) { return respond(401, R"({"details":"bad"})"); });
  auto refused = authorizer->authorize(registry(), kScope, clock_.context());
  EXPECT_EQ(refused.error().code, ErrorCode::kUnauthenticated);
  EXPECT_NE(refused.error().message.find("user \"user\""), std::string::npos);
  EXPECT_EQ(refused.error().message.find("pw"), std::string::npos);
}

TEST_F(AuthorizerTest, BasicChallengeUsesCredentialsDirectly) {
  auto authorizer = make({"user", Secret("pw")});
  ASSERT_TRUE(
      authorizer->onUnauthorized(registry(), challenge("Basic realm=\"r\""), kScope, std::nullopt)
          .ok());
  EXPECT_EQ(authorizer->authorize(registry(), kScope, clock_.context())->value().revealForWire(),
            "Basic dXNlcjpwdw==");
  auto again = authorizer->onUnauthorized(registry(), challenge("Basic realm=\"r\""), kScope,
                                          Secret("Basic dXNlcjpwdw=="));
  EXPECT_EQ(again.error().code, ErrorCode::kUnauthenticated);
}

TEST_F(AuthorizerTest, PostOnlyTokenServerGetsTheOAuth2Form) {
  auto authorizer = make({"user", Secret("p&w")});
  learnBearer(*authorizer);
  http_.expect([](const HttpRequest&) { return respond(405, ""); });
  http_.expect([](const HttpRequest& request) {
    return request.method == "POST" ? respond(200, R"({"access_token":"from-post"})")
                                    : respond(400, "");
  });
  auto header = authorizer->authorize(registry(), kScope, clock_.context());
  ASSERT_TRUE(header.ok()) << header.error().message;
  EXPECT_EQ((*header)->revealForWire(), "Bearer from-post");
  ASSERT_EQ(http_.sent().size(), 2u);
  EXPECT_EQ(http_.sent()[1].url, "https://auth.reg.io:443/token");
  EXPECT_EQ(http_.sent()[1].body,
            "grant_type=password&client_id=pullagent&service=reg.io&scope=repository%3Aapp%3Apull"
            "&username=user&password=p%26w");
}

TEST_F(AuthorizerTest, AnonymousPullsDoNotTryThePostForm) {
  auto authorizer = make();
  learnBearer(*authorizer);
  http_.expect([](const HttpRequest&) { return respond(404, ""); });
  EXPECT_FALSE(authorizer->authorize(registry(), kScope, clock_.context()).ok());
  EXPECT_EQ(http_.sent().size(), 1u);
}

TEST_F(AuthorizerTest, UnsupportedChallengeIsAnError) {
  auto authorizer = make({"user", Secret("pw")});
  auto status =
      authorizer->onUnauthorized(registry(), challenge("Negotiate"), kScope, std::nullopt);
  EXPECT_EQ(status.error().code, ErrorCode::kUnauthenticated);
}

}  // namespace
}  // namespace pullagent::puller
