// Authentication against real registries: htpasswd Basic, and `auth: token` whose JWTs the
// registry verifies itself; the token flow's caching and refresh; secrets never in output.
#include <gtest/gtest.h>

#include "tests/integration/pull_fixture.h"

namespace pullagent::testing {
namespace {

class Auth : public PullTest {};

TEST_F(Auth, BasicRegistryWithCredentials) {
  auto result = pull(stack().registry("basic") + "/test/multi:v1", {"--creds", basicCreds()});
  ASSERT_EQ(result.exit_code, 0) << result.all();
  EXPECT_TRUE(hasBlob(stack().image("test/multi:v1")["digest"]));
}

TEST_F(Auth, BasicRegistryWithoutCredentialsSaysWhatIsMissing) {
  auto result = pull(stack().registry("basic") + "/test/multi:v1");
  EXPECT_EQ(result.exit_code, 3) << result.all();
  EXPECT_NE(result.err.find("requires a username and password"), std::string::npos) << result.err;
}

TEST_F(Auth, BasicRegistryWithWrongPasswordNamesTheUser) {
  auto result = pull(stack().registry("basic") + "/test/multi:v1", {"--creds", "alice:wrong"});
  EXPECT_EQ(result.exit_code, 3) << result.all();
  EXPECT_NE(result.err.find("rejected the username and password for user \"alice\""),
            std::string::npos)
      << result.err;
}

TEST_F(Auth, PasswordFromStandardInput) {
  const auto& info = stack().info();
  auto result =
      runProcess(pullCommand(stack().registry("basic") + "/test/multi:v1",
                             {"--username", info["basic_user"], "--password-stdin"}),
                 std::chrono::seconds(60), info["basic_password"].get<std::string>() + "\n");
  ASSERT_EQ(result.exit_code, 0) << result.all();
}

TEST_F(Auth, TokenRegistryFetchesOneTokenPerPull) {
  auto result = pull(stack().registry("token") + "/test/multi:v1", {"--creds", tokenCreds()});
  ASSERT_EQ(result.exit_code, 0) << result.all();
  auto issued = requests(stack().tokenServer(), "/token");
  ASSERT_EQ(issued.size(), 1u);  // cached across manifest, config and three parallel layers
  EXPECT_EQ(issued[0]["user"], "bob");
  EXPECT_EQ(issued[0]["scope"][0], "repository:test/multi:pull");
}

TEST_F(Auth, TokenServerRejectsWrongCredentials) {
  auto result = pull(stack().registry("token") + "/test/multi:v1", {"--creds", "bob:nope"});
  EXPECT_EQ(result.exit_code, 3) << result.all();
  EXPECT_NE(result.err.find("rejected the credentials of user \"bob\""), std::string::npos)
      << result.err;
}

TEST_F(Auth, AnonymousTokenWhenTheServerAllowsIt) {
  auto refused = pull(stack().registry("token") + "/test/multi:v1");
  EXPECT_EQ(refused.exit_code, 3) << refused.all();
  EXPECT_NE(refused.err.find("refused anonymous access"), std::string::npos) << refused.err;

  stack().configure(stack().tokenServer(), {{"anonymous", true}});
  auto allowed = pull(stack().registry("token") + "/test/multi:v1");
  ASSERT_EQ(allowed.exit_code, 0) << allowed.all();
}

TEST_F(Auth, RefusedTokenMidBlobIsRenewedAndTheBlobResumes) {
  // The connection drops half way through the big layer, and the registry then answers 401
  // (the token "expired"): the agent drops the token, fetches a new one and resumes with Range.
  const auto& big = stack().image("test/multi:v1")["layers"][1];
  const std::string digest = big["digest"];
  const int64_t half = big["size"].get<int64_t>() / 2;
  const std::string proxy = stack().proxy("proxy_token");
  stack().setFaults(proxy,
                    nlohmann::json::array(
                        {{{"match", digest}, {"times", 1}, {"action", "reset_at"}, {"at", half}},
                         {{"match", digest}, {"times", 1}, {"action", "unauthorized"}}}));
  auto result = pull(proxy + "/test/multi:v1", {"--creds", tokenCreds()});
  ASSERT_EQ(result.exit_code, 0) << result.all();

  auto blob_requests = requests(proxy, digest);
  ASSERT_EQ(blob_requests.size(), 3u);
  EXPECT_EQ(blob_requests[0]["range"], nullptr);
  EXPECT_EQ(blob_requests[1]["fault"], "unauthorized");
  ASSERT_TRUE(blob_requests[2]["range"].is_string());
  const std::string range = blob_requests[2]["range"];
  EXPECT_EQ(range.rfind("bytes=", 0), 0u);
  EXPECT_GT(std::stoll(range.substr(6)), 0);  // resumed, not restarted
  EXPECT_EQ(requests(stack().tokenServer(), "/token").size(), 2u);
  // Re-downloaded bytes are bounded by what the interrupted transfer already had.
  EXPECT_LE(bytesServed(proxy, digest), big["size"].get<int64_t>() + half);
  EXPECT_TRUE(hasBlob(digest));
}

TEST_F(Auth, SecretsNeverReachTheOutput) {
  // A pull with every auth path exercised, at debug level: the password, the Basic header and
  // the bearer token (JWTs start with "eyJ") must appear nowhere.
  const std::string proxy = stack().proxy("proxy_token");
  const auto& big = stack().image("test/multi:v1")["layers"][1];
  stack().setFaults(proxy, nlohmann::json::array({{{"match", big["digest"]},
                                                   {"times", 1},
                                                   {"action", "redirect"},
                                                   {"host", stack().storage()}}}));
  auto result = pull(proxy + "/test/multi:v1", {"--creds", tokenCreds(), "--log-level", "trace"});
  ASSERT_EQ(result.exit_code, 0) << result.all();
  const std::string output = result.all();
  EXPECT_EQ(output.find(stack().info()["token_password"].get<std::string>()), std::string::npos);
  EXPECT_EQ(output.find("eyJ"), std::string::npos);
  EXPECT_EQ(output.find("Ym9i"), std::string::npos);  // base64 of "bob" as in a Basic header
  EXPECT_EQ(output.find("SECRETSASSIG"), std::string::npos);  // the SAS signature of the redirect
}

}  // namespace
}  // namespace pullagent::testing
