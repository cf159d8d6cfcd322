#include "base/redact.h"

#include <gtest/gtest.h>

#include "base/secret.h"

namespace pullagent {
namespace {

struct RedactCase {
  const char* url;
  const char* expected;
  friend void PrintTo(const RedactCase& c, std::ostream* out) { *out << c.url; }
};

class RedactUrlTest : public ::testing::TestWithParam<RedactCase> {};

TEST_P(RedactUrlTest, RemovesSecretsKeepsShape) {
  EXPECT_EQ(redactUrl(GetParam().url), GetParam().expected);
}

INSTANTIATE_TEST_SUITE_P(
    Table, RedactUrlTest,
    ::testing::Values(
        RedactCase{"https://reg.io/v2/a/blobs/sha256:ab", "https://reg.io/v2/a/blobs/sha256:ab"},
        RedactCase{"https://acct.blob.core.windows.net/c/x?se=2030&sig=abc%2B&sp=r",
                   "https://acct.blob.core.windows.net/c/x?se=REDACTED&sig=REDACTED&sp=REDACTED"},
        RedactCase{"https://user:pa55@reg.io/v2/", "https://reg.io/v2/"},
        RedactCase{"https://reg.io/token?service=s&scope=repository:a:pull#frag",
                   "https://reg.io/token?service=REDACTED&scope=REDACTED"},
        RedactCase{"https://reg.io/p?flag", "https://reg.io/p?flag"},
        RedactCase{"/relative?token=abc", "/relative?token=REDACTED"}));

TEST(RedactHeader, OnlyAllowListedHeadersKeepTheirValue) {
  EXPECT_EQ(redactHeader("Authorization", "Bearer abc"), "REDACTED");
  EXPECT_EQ(redactHeader("X-IDENTITY-HEADER", "secret"), "REDACTED");
  EXPECT_EQ(redactHeader("content-type", "application/json"), "application/json");
  EXPECT_EQ(redactHeader("Location", "https://s/x?sig=1"), "https://s/x?sig=REDACTED");
}

TEST(Secret, NeverPrintsItsValue) {
  Secret secret("hunter2");
  EXPECT_EQ(fmt::format("{}", secret), "<redacted>");
  std::ostringstream out;
  out << secret;
  EXPECT_EQ(out.str(), "<redacted>");
  EXPECT_EQ(secret.revealForWire(), "hunter2");
}

}  // namespace
}  // namespace pullagent
