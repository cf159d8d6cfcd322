#include "puller/auth/acr_exchange.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include "tests/support/fake_clock.h"
#include "tests/support/scripted_http.h"

namespace pullagent::puller {
namespace {

using testing::respond;
using testing::ScriptedHttp;

std::string base64Url(const std::string& raw) {
  std::string out(4 * ((raw.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(raw.data()),
                          static_cast<int>(raw.size()));
  out.resize(static_cast<size_t>(n));
  for (auto& c : out)
    c = c == '+' ? '-' : c == '/' ? '_' : c;
  while (!out.empty() && out.back() == '=')
    out.pop_back();
  return out;
}

// An unsigned JWT with the claims a client reads.
std::string jwt(long long exp, const std::string& extra = "") {
  return base64Url(R"({"alg":"RS256"})") + "." +
         base64Url(R"({"exp":)" + std::to_string(exp) + extra + "}") + ".sig";
}

class FakeAad final : public AadTokenSource {
 public:
  Result<AadToken> token(const std::string& resource, const Context&) override {
    resources.push_back(resource);
    if (fail)
      return makeError(ErrorCode::kUnauthenticated, "no identity");
    return AadToken{Secret(jwt(1767229200, R"(,"tid":"tenant-guid")")), {}};
  }
  std::string identityName() const override { return "user-assigned identity abc"; }
  std::vector<std::string> resources;
  bool fail = false;
};

class AcrExchange : public ::testing::Test {
 protected:
  Url registry() { return Url::parse("https://myreg.azurecr.io/v2/app/manifests/v1").value(); }
  Url realm() { return Url::parse("https://myreg.azurecr.io/oauth2/token").value(); }
  testing::FakeClock clock_;  // wall time 1767225600
  ScriptedHttp http_;
  FakeAad aad_;
  AcrTokenExchange exchange_{http_, clock_, aad_, "https://containerregistry.azure.net"};
};

TEST_F(AcrExchange, AadTokenBecomesRefreshThenAccessToken) {
  const std::string refresh = jwt(1767236400);  // 3 h
  const std::string access = jwt(1767230100);   // 75 min
  http_.expect(
      [&](const HttpRequest&) { return respond(200, R"({"refresh_token":")" + refresh + "\"}"); });
  http_.expect(
      [&](const HttpRequest&) { return respond(200, R"({"access_token":")" + access + "\"}"); });
  auto token = exchange_.accessToken(registry(), realm(), "myreg.azurecr.io", "repository:app:pull",
                                     clock_.context());
  ASSERT_TRUE(token.ok()) << token.error().message;
  EXPECT_EQ(token->token.revealForWire(), access);
  EXPECT_EQ(token->lifetime, std::chrono::seconds(4500));
  ASSERT_EQ(http_.sent().size(), 2u);
  EXPECT_EQ(http_.sent()[0].url, "https://myreg.azurecr.io:443/oauth2/exchange");
  EXPECT_EQ(
      http_.sent()[0].body.find("grant_type=access_token&service=myreg.azurecr.io&access_token="),
      0u);
  EXPECT_NE(http_.sent()[0].body.find("&tenant=tenant-guid"), std::string::npos);
  EXPECT_EQ(http_.sent()[1].url, "https://myreg.azurecr.io:443/oauth2/token");
  EXPECT_EQ(http_.sent()[1].body,
            "grant_type=refresh_token&service=myreg.azurecr.io"
            "&scope=repository%3Aapp%3Apull&refresh_token=" +
                refresh);
  EXPECT_EQ(aad_.resources, std::vector<std::string>{"https://containerregistry.azure.net"});
}

TEST_F(AcrExchange, RefreshTokenIsReusedForOtherScopes) {
  http_.expect([&](const HttpRequest&) {
    return respond(200, R"({"refresh_token":")" + jwt(1767236400) + "\"}");
  });
  http_.expect([&](const HttpRequest&) {
    return respond(200, R"({"access_token":")" + jwt(1767230100) + "\"}");
  });
  http_.expect([&](const HttpRequest&) {
    return respond(200, R"({"access_token":")" + jwt(1767230100) + "\"}");
  });
  ASSERT_TRUE(exchange_
                  .accessToken(registry(), realm(), "myreg.azurecr.io", "repository:a:pull",
                               clock_.context())
                  .ok());
  ASSERT_TRUE(exchange_
                  .accessToken(registry(), realm(), "myreg.azurecr.io", "repository:b:pull",
                               clock_.context())
                  .ok());
  EXPECT_EQ(http_.sent().size(), 3u);  // one exchange, two token requests
}

TEST_F(AcrExchange, RevokedRefreshTokenIsExchangedAgainOnce) {
  http_.expect([&](const HttpRequest&) {
    return respond(200, R"({"refresh_token":")" + jwt(1767236400) + "\"}");
  });
  http_.expect(
      [](const HttpRequest&) { return respond(401, R"({"errors":[{"code":"UNAUTHORIZED"}]})"); });
  http_.expect([&](const HttpRequest&) {
    return respond(200, R"({"refresh_token":")" + jwt(1767236400) + "\"}");
  });
  http_.expect([&](const HttpRequest&) {
    return respond(200, R"({"access_token":")" + jwt(1767230100) + "\"}");
  });
  ASSERT_TRUE(exchange_
                  .accessToken(registry(), realm(), "myreg.azurecr.io", "repository:a:pull",
                               clock_.context())
                  .ok());
  EXPECT_EQ(http_.sent().size(), 4u);
}

TEST_F(AcrExchange, RealmOnAnotherHostGetsNoToken) {
  for (const char* other :
       {"https://evil.example.com/oauth2/token", "http://myreg.azurecr.io/oauth2/token",
        "https://myreg.azurecr.io:8443/oauth2/token"}) {
    auto token = exchange_.accessToken(registry(), Url::parse(other).value(), "myreg.azurecr.io",
                                       "repository:a:pull", clock_.context());
    ASSERT_FALSE(token.ok()) << other;
    EXPECT_EQ(token.error().code, ErrorCode::kUntrusted);
  }
  EXPECT_TRUE(http_.sent().empty());
  EXPECT_TRUE(aad_.resources.empty());  // not even an AAD token was fetched
}

// An identity's token is for Azure Container Registry: a registry that is not an ACR login
// server gets nothing, even with a realm on itself.
TEST_F(AcrExchange, ARegistryThatIsNotAnAcrLoginServerGetsNoToken) {
  for (const char* other :
       {"https://evil.example.com/v2/a/manifests/v1",
        "https://myreg.azurecr.io.evil.com/v2/a/manifests/v1",
        "https://a.b.azurecr.io/v2/a/manifests/v1", "https://azurecr.io/v2/a/manifests/v1",
        "https://myreg.westus.data.azurecr.io/v2/a/manifests/v1",
        "https://myreg.azurecr.cn/v2/a/manifests/v1"}) {
    const auto registry = Url::parse(other).value();
    auto token =
        exchange_.accessToken(registry, Url{"https", registry.host, registry.port, "/oauth2/token"},
                              registry.host, "repository:a:pull", clock_.context());
    ASSERT_FALSE(token.ok()) << other;
    EXPECT_EQ(token.error().code, ErrorCode::kUntrusted);
    EXPECT_NE(token.error().message.find("exchanged only with Azure Container Registry login "
                                         "servers"),
              std::string::npos)
        << token.error().message;
  }
  EXPECT_TRUE(http_.sent().empty());
  EXPECT_TRUE(aad_.resources.empty());
}

TEST_F(AcrExchange, RefusedIdentitySaysWhatToFix) {
  http_.expect([](const HttpRequest&) { return respond(401, "{}"); });
  auto token = exchange_.accessToken(registry(), realm(), "myreg.azurecr.io", "repository:a:pull",
                                     clock_.context());
  ASSERT_FALSE(token.ok());
  EXPECT_EQ(token.error().code, ErrorCode::kUnauthenticated);
  EXPECT_NE(token.error().message.find("user-assigned identity abc"), std::string::npos);
  EXPECT_NE(token.error().message.find("AcrPull"), std::string::npos);
}

TEST_F(AcrExchange, NoPullRightsOnTheRepository) {
  http_.expect([&](const HttpRequest&) {
    return respond(200, R"({"refresh_token":")" + jwt(1767236400) + "\"}");
  });
  http_.expect([](const HttpRequest&) { return respond(403, "{}"); });
  auto token = exchange_.accessToken(registry(), realm(), "myreg.azurecr.io", "repository:a:pull",
                                     clock_.context());
  ASSERT_FALSE(token.ok());
  EXPECT_EQ(token.error().code, ErrorCode::kPermissionDenied);
}

}  // namespace
}  // namespace pullagent::puller
