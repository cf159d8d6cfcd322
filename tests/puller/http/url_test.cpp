#include "puller/http/url.h"

#include <gtest/gtest.h>

namespace pullagent::puller {
namespace {

TEST(Url, ParsesAndDefaultsPorts) {
  auto url = Url::parse("HTTPS://Reg.Example.com/v2/a/manifests/v1?x=1");
  ASSERT_TRUE(url.ok());
  EXPECT_EQ(url->scheme, "https");
  EXPECT_EQ(url->host, "reg.example.com");
  EXPECT_EQ(url->port, 443);
  EXPECT_EQ(url->target, "/v2/a/manifests/v1?x=1");
  EXPECT_EQ(url->origin(), "https://reg.example.com:443");
}

TEST(Url, Ipv6HostPortIsBracketed) {
  auto url = Url::parse("http://[::1]:5000/v2/");
  ASSERT_TRUE(url.ok());
  EXPECT_EQ(url->host, "::1");
  EXPECT_EQ(url->hostPort(), "[::1]:5000");
}

TEST(Url, ResolvesRelativeAndAbsoluteLocations) {
  auto relative = Url::resolve("https://reg.io:5000/v2/a/blobs/sha256:x", "/storage/x?sig=1");
  ASSERT_TRUE(relative.ok());
  EXPECT_EQ(relative->str(), "https://reg.io:5000/storage/x?sig=1");
  auto absolute = Url::resolve("https://reg.io/v2/", "https://acct.blob.core.windows.net/c/x");
  ASSERT_TRUE(absolute.ok());
  EXPECT_EQ(absolute->host, "acct.blob.core.windows.net");
}

TEST(Url, OriginComparisonCoversSchemeHostAndPort) {
  auto a = Url::parse("https://reg.io/v2/").value();
  EXPECT_TRUE(a.sameOrigin(Url::parse("https://REG.io:443/other").value()));
  EXPECT_FALSE(a.sameOrigin(Url::parse("https://reg.io:444/v2/").value()));
  EXPECT_FALSE(a.sameOrigin(Url::parse("http://reg.io/v2/").value()));
  EXPECT_FALSE(a.sameOrigin(Url::parse("https://reg.io.evil.com/v2/").value()));
}

TEST(Url, RejectsOtherSchemes) {
  EXPECT_FALSE(Url::parse("file:///etc/passwd").ok());
  EXPECT_FALSE(Url::parse("ftp://reg.io/").ok());
  EXPECT_FALSE(Url::resolve("https://reg.io/", "gopher://x/").ok());
}

TEST(Url, ResolvePinEntriesBracketIpv6) {
  EXPECT_EQ(resolvePinEntry("myreg.azurecr.io", 443, {"10.0.0.7"}),
            "myreg.azurecr.io:443:10.0.0.7");
  EXPECT_EQ(resolvePinEntry("myreg.azurecr.io", 5000, {"10.0.0.7", "fd00::7", "::1"}),
            "myreg.azurecr.io:5000:10.0.0.7,[fd00::7],[::1]");
}

TEST(Url, EncodesQueryValues) {
  EXPECT_EQ(urlEncode("repository:a/b:pull"), "repository%3Aa%2Fb%3Apull");
  EXPECT_EQ(urlEncode("a-b_c.d~"), "a-b_c.d~");
}

}  // namespace
}  // namespace pullagent::puller
