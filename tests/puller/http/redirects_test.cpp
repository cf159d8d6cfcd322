#include "puller/http/redirects.h"

#include <gtest/gtest.h>

#include "tests/support/fake_clock.h"
#include "tests/support/scripted_http.h"

namespace pullagent::puller {
namespace {

using testing::respond;
using testing::ScriptedHttp;

class Redirects : public ::testing::Test {
 protected:
  HttpRequest authorized(const std::string& url) {
    HttpRequest request;
    request.url = url;
    request.authorization = Secret("Bearer registry-token");
    return request;
  }
  static ScriptedHttp::Handler redirectTo(std::string location, int status = 307) {
    return [=](const HttpRequest&) { return respond(status, "", {{"Location", location}}); };
  }
  testing::FakeClock clock_;
  ScriptedHttp http_;
};

TEST_F(Redirects, CredentialsStayWithTheOriginalOrigin) {
  http_.expect(redirectTo("/v2/moved"));                                     // same origin
  http_.expect(redirectTo("https://acct.blob.core.windows.net/c/x?sig=s"));  // other host
  http_.expect(redirectTo("https://reg.io/back"));  // back home: still no credentials
  http_.expect([](const HttpRequest&) { return respond(200, "blob"); });
  std::string final_url;
  auto response = sendFollowingRedirects(http_, authorized("https://reg.io/v2/a/blobs/x"),
                                         clock_.context(), &final_url);
  ASSERT_TRUE(response.ok()) << response.error().message;
  EXPECT_EQ(response->body, "blob");
  ASSERT_EQ(http_.sent().size(), 4u);
  EXPECT_EQ(http_.sent()[0].authorization, "Bearer registry-token");
  EXPECT_EQ(http_.sent()[1].url, "https://reg.io:443/v2/moved");
  EXPECT_EQ(http_.sent()[1].authorization, "Bearer registry-token");
  EXPECT_EQ(http_.sent()[2].authorization, "");
  EXPECT_EQ(http_.sent()[3].authorization, "");
  EXPECT_EQ(final_url, "https://reg.io:443/back");
}

TEST_F(Redirects, AnotherPortIsAnotherOrigin) {
  http_.expect(redirectTo("https://reg.io:8443/x"));
  http_.expect([](const HttpRequest&) { return respond(200); });
  ASSERT_TRUE(
      sendFollowingRedirects(http_, authorized("https://reg.io/v2/"), clock_.context()).ok());
  EXPECT_EQ(http_.sent()[1].authorization, "");
}

TEST_F(Redirects, HttpsToHttpIsRefused) {
  http_.expect(redirectTo("http://reg.io/v2/x"));
  auto response = sendFollowingRedirects(http_, authorized("https://reg.io/v2/"), clock_.context());
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.error().code, ErrorCode::kUntrusted);
  EXPECT_EQ(http_.sent().size(), 1u);
}

TEST_F(Redirects, AtMostTenAreFollowed) {
  for (int i = 0; i <= kMaxRedirects; ++i)
    http_.expect(redirectTo("/loop" + std::to_string(i)));
  auto response = sendFollowingRedirects(http_, authorized("https://reg.io/v2/"), clock_.context());
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.error().code, ErrorCode::kProtocol);
  EXPECT_EQ(http_.sent().size(), static_cast<size_t>(kMaxRedirects + 1));
}

TEST_F(Redirects, RedirectWithoutLocationIsAProtocolError) {
  http_.expect([](const HttpRequest&) { return respond(302); });
  auto response = sendFollowingRedirects(http_, authorized("https://reg.io/v2/"), clock_.context());
  EXPECT_EQ(response.error().code, ErrorCode::kProtocol);
}

}  // namespace
}  // namespace pullagent::puller
