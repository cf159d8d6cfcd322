#include "puller/auth/challenge.h"

#include <gtest/gtest.h>

namespace pullagent::puller {
namespace {

TEST(Challenge, DockerHubBearer) {
  auto c = parseChallenges(
      {R"(Bearer realm="https://auth.docker.io/token",)"
       R"(service="registry.docker.io",scope="repository:samalba/my-app:pull,push")"});
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].scheme, "bearer");
  EXPECT_EQ(c[0].param("realm"), "https://auth.docker.io/token");
  EXPECT_EQ(c[0].param("service"), "registry.docker.io");
  EXPECT_EQ(c[0].param("scope"), "repository:samalba/my-app:pull,push");
}

TEST(Challenge, SeveralChallengesInOneValue) {
  auto c = parseChallenges({R"(Bearer realm="https://a/token", service="x", Basic realm="b")"});
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0].scheme, "bearer");
  EXPECT_EQ(c[0].param("service"), "x");
  EXPECT_EQ(c[1].scheme, "basic");
  EXPECT_EQ(c[1].param("realm"), "b");
}

TEST(Challenge, SeveralFields) {
  auto c = parseChallenges({R"(Basic realm="registry")", R"(Bearer realm="https://t")"});
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0].scheme, "basic");
  EXPECT_EQ(c[1].scheme, "bearer");
}

TEST(Challenge, CaseInsensitiveNamesAndTokenValues) {
  auto c = parseChallenges({"BEARER Realm=\"https://t/x\" ,SERVICE=svc"});
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].scheme, "bearer");
  EXPECT_EQ(c[0].param("realm"), "https://t/x");
  EXPECT_EQ(c[0].param("service"), "svc");
}

TEST(Challenge, QuotedStringEscapesAndCommas) {
  auto c = parseChallenges({R"(Bearer realm="https://t/a,b", error="say \"hi\"\\", x = "y")"});
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].param("realm"), "https://t/a,b");
  EXPECT_EQ(c[0].param("error"), R"(say "hi"\)");
  EXPECT_EQ(c[0].param("x"), "y");
}

TEST(Challenge, SchemeWithoutParamsAndToken68) {
  auto c = parseChallenges({"Negotiate, Custom abc123==, Basic realm=\"r\""});
  ASSERT_EQ(c.size(), 3u);
  EXPECT_EQ(c[0].scheme, "negotiate");
  EXPECT_EQ(c[1].scheme, "custom");
  EXPECT_EQ(c[1].token68, "abc123==");
  EXPECT_EQ(c[2].param("realm"), "r");
}

TEST(Challenge, MalformedInputIsNotTrusted) {
  EXPECT_TRUE(parseChallenges({""}).empty());
  auto unterminated = parseChallenges({R"(Bearer realm="https://t)"});
  ASSERT_EQ(unterminated.size(), 1u);
  EXPECT_FALSE(unterminated[0].param("realm").has_value());
}

TEST(Challenge, AcrStyleWithErrorParam) {
  auto c = parseChallenges(
      {R"(Bearer realm="https://myreg.azurecr.io/oauth2/token",service="myreg.azurecr.io",)"
       R"(scope="repository:privatewebsite:pull",error="invalid_token")"});
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].param("error"), "invalid_token");
  EXPECT_EQ(c[0].params.size(), 4u);
}

}  // namespace
}  // namespace pullagent::puller
