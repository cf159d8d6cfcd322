// CurlHttpClient against the real registry's TLS endpoint: the HostResolver's answer is pinned
// into curl while TLS keeps checking the name from the URL.
#include "puller/http/curl_http_client.h"

#include <gtest/gtest.h>

#include <map>

#include "base/clock.h"
#include "tests/support/test_stack.h"

namespace pullagent::testing {
namespace {

using Answers = std::map<std::string, std::vector<std::string>>;

class MapResolver final : public HostResolver {
 public:
  explicit MapResolver(Answers answers) : answers_(std::move(answers)) {}
  Result<std::vector<std::string>> resolve(const std::string& host, const Context&) override {
    asked.push_back(host);
    auto it = answers_.find(host);
    if (it == answers_.end())
      return makeError(ErrorCode::kNotFound, "no such host " + host);
    return it->second;
  }
  std::vector<std::string> asked;

 private:
  std::map<std::string, std::vector<std::string>> answers_;
};

class HttpClientTls : public ::testing::Test {
 protected:
  std::unique_ptr<puller::CurlHttpClient> client(HostResolver& resolver) {
    puller::HttpClientOptions options;
    options.resolver = &resolver;
    options.extra_ca_file = TestStack::shared().ca();
    options.connect_timeout = std::chrono::seconds(5);
    return std::move(puller::CurlHttpClient::create(options).value());
  }
  std::string port() {
    std::string registry = TestStack::shared().registry("anon");
    return registry.substr(registry.find(':') + 1);
  }
  Result<puller::HttpResponse> get(puller::HttpClient& http, const std::string& host,
                                   const std::string& path = "/v2/", size_t max_body = 4 << 20) {
    puller::HttpRequest request;
    request.url = "https://" + host + ":" + port() + path;
    request.max_body = max_body;
    return http.send(request, Context{&clock_, {}, std::nullopt});
  }
  SystemClock clock_;
};

TEST_F(HttpClientTls, PinnedAddressKeepsTheNameForTls) {
  MapResolver resolver(Answers{{"registry.pullagent.test", {"127.0.0.1"}}});
  auto http = client(resolver);
  auto response = get(*http, "registry.pullagent.test");
  ASSERT_TRUE(response.ok()) << response.error().message;
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(resolver.asked, std::vector<std::string>{"registry.pullagent.test"});
}

TEST_F(HttpClientTls, NameNotInTheCertificateFailsClosed) {
  MapResolver resolver(Answers{{"wrong.pullagent.test", {"127.0.0.1"}}});
  auto http = client(resolver);
  auto response = get(*http, "wrong.pullagent.test");
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.error().code, ErrorCode::kUntrusted) << response.error().message;
}

TEST_F(HttpClientTls, EveryResolvedAddressIsTriedInOrder) {
  // 127.0.0.9 has nothing listening on the port: refused, then the next address works.
  MapResolver resolver(Answers{{"registry.pullagent.test", {"127.0.0.9", "127.0.0.1"}}});
  auto http = client(resolver);
  auto response = get(*http, "registry.pullagent.test");
  ASSERT_TRUE(response.ok()) << response.error().message;
  EXPECT_EQ(response->status, 200);
}

TEST_F(HttpClientTls, ConnectFailureNamesHostAndAddressesTried) {
  MapResolver resolver(Answers{{"registry.pullagent.test", {"127.0.0.9"}}});
  auto http = client(resolver);
  auto response = get(*http, "registry.pullagent.test");
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(response.error().message.find("registry.pullagent.test at 127.0.0.9"),
            std::string::npos)
      << response.error().message;
}

TEST_F(HttpClientTls, ResolverFailureIsReportedWithTheHost) {
  MapResolver resolver(Answers{});
  auto http = client(resolver);
  auto response = get(*http, "registry.pullagent.test");
  ASSERT_FALSE(response.ok());
  EXPECT_NE(response.error().message.find("no such host registry.pullagent.test"),
            std::string::npos);
}

TEST_F(HttpClientTls, BufferedBodiesAreCapped) {
  MapResolver resolver(Answers{{"registry.pullagent.test", {"127.0.0.1"}}});
  auto http = client(resolver);
  puller::HttpRequest request;
  request.url = "https://registry.pullagent.test:" + port() + "/v2/test/multi/manifests/v1";
  request.headers.push_back({"Accept", "application/vnd.oci.image.manifest.v1+json"});
  request.max_body = 100;
  auto response = http->send(request, Context{&clock_, {}, std::nullopt});
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.error().code, ErrorCode::kResourceExhausted);
}

TEST_F(HttpClientTls, ConnectionsCanBeBoundToASourceAddress) {
  MapResolver resolver(Answers{{"registry.pullagent.test", {"127.0.0.1"}}});
  puller::HttpClientOptions options;
  options.resolver = &resolver;
  options.extra_ca_file = TestStack::shared().ca();
  options.bind_to = "host!127.0.0.9";  // any 127/8 address is local
  auto bound = puller::CurlHttpClient::create(options);
  ASSERT_TRUE(bound.ok());
  auto response = get(**bound, "registry.pullagent.test");
  ASSERT_TRUE(response.ok()) << response.error().message;
  EXPECT_EQ(response->status, 200);

  options.bind_to = "host!192.0.2.1";  // TEST-NET, not on this machine: binding fails locally
  auto unbindable = puller::CurlHttpClient::create(options);
  auto failed = get(**unbindable, "registry.pullagent.test");
  EXPECT_FALSE(failed.ok());
}

TEST_F(HttpClientTls, StopRequestCancelsATransfer) {
  MapResolver resolver(Answers{{"registry.pullagent.test", {"127.0.0.1"}}});
  auto http = client(resolver);
  std::stop_source stop;
  stop.request_stop();
  puller::HttpRequest request;
  request.url = "https://registry.pullagent.test:" + port() + "/v2/";
  auto response = http->send(request, Context{&clock_, stop.get_token(), std::nullopt});
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.error().code, ErrorCode::kCancelled);
}

}  // namespace
}  // namespace pullagent::testing
