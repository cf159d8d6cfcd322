#include "puller/reference/reference.h"

#include <gtest/gtest.h>

namespace pullagent::puller {
namespace {

const std::string kDigest =
    "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

struct GoodRef {
  std::string text;
  std::string domain;
  std::string api_host;
  std::string repository;
  std::string reference;  // tag or digest used in the manifest URL
  friend void PrintTo(const GoodRef& c, std::ostream* out) { *out << '"' << c.text << '"'; }
};

class ReferenceParses : public ::testing::TestWithParam<GoodRef> {};

TEST_P(ReferenceParses, WithDockerNormalisation) {
  const auto& c = GetParam();
  auto ref = ImageRef::parse(c.text);
  ASSERT_TRUE(ref.ok()) << ref.error().message;
  EXPECT_EQ(ref->domain, c.domain);
  EXPECT_EQ(ref->apiHost(), c.api_host);
  EXPECT_EQ(ref->repository, c.repository);
  EXPECT_EQ(ref->manifestReference(), c.reference);
}

INSTANTIATE_TEST_SUITE_P(
    Table, ReferenceParses,
    ::testing::Values(
        GoodRef{"ubuntu", "docker.io", "registry-1.docker.io", "library/ubuntu", "latest"},
        GoodRef{"ubuntu:22.04", "docker.io", "registry-1.docker.io", "library/ubuntu", "22.04"},
        GoodRef{"docker.io/ubuntu", "docker.io", "registry-1.docker.io", "library/ubuntu",
                "latest"},
        GoodRef{"index.docker.io/library/nginx:1", "docker.io", "registry-1.docker.io",
                "library/nginx", "1"},
        GoodRef{"bitnami/redis", "docker.io", "registry-1.docker.io", "bitnami/redis", "latest"},
        GoodRef{"myreg.azurecr.io/privatewebsite:lnx-v1", "myreg.azurecr.io", "myreg.azurecr.io",
                "privatewebsite", "lnx-v1"},
        GoodRef{"localhost/app", "localhost", "localhost", "app", "latest"},
        GoodRef{"127.0.0.1:5000/a/b/c:t_1.0-x", "127.0.0.1:5000", "127.0.0.1:5000", "a/b/c",
                "t_1.0-x"},
        GoodRef{"[::1]:5000/app:v1", "[::1]:5000", "[::1]:5000", "app", "v1"},
        GoodRef{"Registry.Example/app", "Registry.Example", "Registry.Example", "app", "latest"},
        GoodRef{"reg.io/app@" + kDigest, "reg.io", "reg.io", "app", kDigest},
        GoodRef{"reg.io/app:v1@" + kDigest, "reg.io", "reg.io", "app", kDigest},
        GoodRef{"reg.io/a__b/c-d--e.f:1", "reg.io", "reg.io", "a__b/c-d--e.f", "1"}));

struct BadRef {
  std::string text;
  std::string names;  // the message must name the bad part
  friend void PrintTo(const BadRef& c, std::ostream* out) { *out << '"' << c.text << '"'; }
};

class ReferenceRejects : public ::testing::TestWithParam<BadRef> {};

TEST_P(ReferenceRejects, NamingTheBadPart) {
  auto ref = ImageRef::parse(GetParam().text);
  ASSERT_FALSE(ref.ok()) << GetParam().text;
  EXPECT_EQ(ref.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(ref.error().message.find(GetParam().names), std::string::npos) << ref.error().message;
}

INSTANTIATE_TEST_SUITE_P(
    Table, ReferenceRejects,
    ::testing::Values(BadRef{"reg.io/MyApp:v1", "must be lowercase"},
                      BadRef{"Ubuntu", "must be lowercase"}, BadRef{"reg.io/app:-bad", "bad tag"},
                      BadRef{"reg.io/app:" + std::string(129, 'a'), "bad tag"},
                      BadRef{"reg.io/app@sha256:abc", "bad digest"},
                      BadRef{"reg.io/app@md5:abc", "bad digest"},
                      BadRef{"reg.io/app//x", "bad repository path component"},
                      BadRef{"reg.io/-app", "bad repository path component"}, BadRef{"", "empty"},
                      BadRef{"reg.io:99999x/app", "bad registry host"},
                      BadRef{"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                             "image ID"}));

TEST(Reference, ScopeAndString) {
  auto ref = ImageRef::parse("myreg.azurecr.io/privatewebsite:lnx-v1");
  ASSERT_TRUE(ref.ok());
  EXPECT_EQ(ref->pullScope(), "repository:privatewebsite:pull");
  EXPECT_EQ(ref->str(), "myreg.azurecr.io/privatewebsite:lnx-v1");
}

}  // namespace
}  // namespace pullagent::puller
