#include "agent/identity/managed_identity.h"

#include <gtest/gtest.h>

#include "tests/support/fake_clock.h"
#include "tests/support/fixed_random.h"
#include "tests/support/scripted_http.h"

namespace pullagent::agent {
namespace {

using testing::respond;
using testing::ScriptedHttp;
const std::string kAcr = "https://containerregistry.azure.net";
const std::string kClientId = "11111111-2222-3333-4444-555555555555";

class ManagedIdentity : public ::testing::Test {
 protected:
  ManagedIdentityTokenSource imds(const std::string& client_id = "") {
    return ManagedIdentityTokenSource(http_, clock_, random_, IdentityEndpoint{}, client_id);
  }
  // FakeClock's wall time starts at 2026-01-01T00:00:00Z = 1767225600.
  static std::string tokenJson(long long expires_on) {
    return R"({"access_token":"aad-token","expires_in":"3599","expires_on":")" +
           std::to_string(expires_on) +
           R"(","resource":"https://containerregistry.azure.net","token_type":"Bearer"})";
  }
  testing::FakeClock clock_;
  testing::FixedRandom random_{1.0};
  ScriptedHttp http_;
};

TEST_F(ManagedIdentity, ImdsRequestForAUserAssignedIdentity) {
  http_.expect([](const puller::HttpRequest&) { return respond(200, tokenJson(1767229200)); });
  auto source = imds(kClientId);
  auto token = source.token(kAcr, clock_.context());
  ASSERT_TRUE(token.ok()) << token.error().message;
  EXPECT_EQ(token->token.revealForWire(), "aad-token");
  EXPECT_EQ(std::chrono::system_clock::to_time_t(token->expires_on), 1767229200);
  ASSERT_EQ(http_.sent().size(), 1u);
  EXPECT_EQ(http_.sent()[0].url,
            "http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01"
            "&resource=https%3A%2F%2Fcontainerregistry.azure.net&client_id=" +
                kClientId);
  ASSERT_EQ(http_.sent()[0].headers.size(), 1u);
  EXPECT_EQ(http_.sent()[0].headers[0].name, "Metadata");
  EXPECT_EQ(http_.sent()[0].headers[0].value, "true");
}

TEST_F(ManagedIdentity, AppServiceEndpointSendsTheIdentityHeader) {
  IdentityEndpoint endpoint{IdentityEndpoint::Kind::kAppService, "http://127.0.0.1:41741/msi/token",
                            Secret("identity-header-secret")};
  ManagedIdentityTokenSource source(http_, clock_, random_, endpoint, "");
  http_.expect([](const puller::HttpRequest&) {
    return respond(200, R"({"access_token":"t","expires_on":1767229200,"token_type":"Bearer"})");
  });
  ASSERT_TRUE(source.token(kAcr, clock_.context()).ok());
  EXPECT_EQ(http_.sent()[0].url,
            "http://127.0.0.1:41741/msi/token?api-version=2019-08-01"
            "&resource=https%3A%2F%2Fcontainerregistry.azure.net");
  EXPECT_EQ(http_.sent()[0].headers[0].name, "X-IDENTITY-HEADER");
  EXPECT_EQ(http_.sent()[0].headers[0].value, "identity-header-secret");
}

TEST_F(ManagedIdentity, CachedUntilTwoMinutesBeforeExpiry) {
  auto source = imds();
  http_.expect([](const puller::HttpRequest&) { return respond(200, tokenJson(1767226800)); });
  ASSERT_TRUE(source.token(kAcr, clock_.context()).ok());
  clock_.advance(std::chrono::seconds(1079));  // 20 min token: refreshed at 18 min
  ASSERT_TRUE(source.token(kAcr, clock_.context()).ok());
  EXPECT_EQ(http_.sent().size(), 1u);
  clock_.advance(std::chrono::seconds(1));
  http_.expect([](const puller::HttpRequest&) { return respond(200, tokenJson(1767230000)); });
  ASSERT_TRUE(source.token(kAcr, clock_.context()).ok());
  EXPECT_EQ(http_.sent().size(), 2u);
}

TEST_F(ManagedIdentity, TransientAnswersAreRetriedThenSucceed) {
  auto source = imds(kClientId);
  for (int status : {404, 410, 429, 500, 503})
    http_.expect(
        [status](const puller::HttpRequest&) { return respond(status, R"({"error":"busy"})"); });
  http_.expect([](const puller::HttpRequest&) { return respond(200, tokenJson(1767229200)); });
  auto token = source.token(kAcr, clock_.context());
  ASSERT_TRUE(token.ok()) << token.error().message;
  EXPECT_EQ(http_.sent().size(), 6u);
  EXPECT_EQ(clock_.sleeps().size(), 5u);  // backoff between attempts, on the fake clock
}

TEST_F(ManagedIdentity, UnassignedIdentityIsNotRetriedAndSaysWhatToFix) {
  auto source = imds(kClientId);
  http_.expect([](const puller::HttpRequest&) {
    return respond(400, R"({"error":"invalid_request","error_description":"Identity not found"})");
  });
  auto token = source.token(kAcr, clock_.context());
  ASSERT_FALSE(token.ok());
  EXPECT_EQ(token.error().code, ErrorCode::kUnauthenticated);
  EXPECT_NE(token.error().message.find("user-assigned identity " + kClientId), std::string::npos);
  EXPECT_NE(token.error().message.find("Identity not found"), std::string::npos);
  EXPECT_NE(token.error().message.find("assigned to the site"), std::string::npos);
  EXPECT_EQ(http_.sent().size(), 1u);
}

TEST_F(ManagedIdentity, ExpiresOnFormats) {
  EXPECT_EQ(std::chrono::system_clock::to_time_t(*parseExpiresOn("1586984735")), 1586984735);
  EXPECT_EQ(std::chrono::system_clock::to_time_t(*parseExpiresOn("06/20/2019 02:57:58 +00:00")),
            1560999478);
  EXPECT_EQ(std::chrono::system_clock::to_time_t(*parseExpiresOn("1/16/2020 5:24:12 AM +00:00")),
            1579152252);
  EXPECT_EQ(std::chrono::system_clock::to_time_t(*parseExpiresOn("1/16/2020 5:24:12 PM +00:00")),
            1579195452);
  EXPECT_FALSE(parseExpiresOn("soon").has_value());
}

TEST_F(ManagedIdentity, ExpiresInIsTheFallback) {
  auto source = imds();
  http_.expect([](const puller::HttpRequest&) {
    return respond(200, R"({"access_token":"t","expires_in":"600"})");
  });
  auto token = source.token(kAcr, clock_.context());
  ASSERT_TRUE(token.ok());
  EXPECT_EQ(token->expires_on, clock_.wallNow() + std::chrono::seconds(600));
}

}  // namespace
}  // namespace pullagent::agent
