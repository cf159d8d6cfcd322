#include "base/error.h"

#include <gtest/gtest.h>

namespace pullagent {
namespace {

TEST(Error, OnlyTransientCodesAreRetryable) {
  EXPECT_TRUE(isRetryable(makeError(ErrorCode::kUnavailable, "x")));
  EXPECT_TRUE(isRetryable(makeError(ErrorCode::kTimeout, "x")));
  for (auto code : {ErrorCode::kNotFound, ErrorCode::kUnauthenticated, ErrorCode::kDigestMismatch,
                    ErrorCode::kPermissionDenied, ErrorCode::kUntrusted, ErrorCode::kProtocol}) {
    EXPECT_FALSE(isRetryable(makeError(code, "x"))) << toString(code);
  }
}

TEST(Error, ContextPrefixesAndKeepsCode) {
  auto error = makeError(ErrorCode::kNotFound, "manifest unknown").context("pull a:b");
  EXPECT_EQ(error.code, ErrorCode::kNotFound);
  EXPECT_EQ(error.describe(), "not found: pull a:b: manifest unknown");
}

TEST(Result, HoldsValueOrError) {
  Result<int> good = 4;
  Result<int> bad = makeError(ErrorCode::kInternal, "boom");
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(*good, 4);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message, "boom");
}

}  // namespace
}  // namespace pullagent
