#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "base/base64.h"
#include "base/clock.h"
#include "base/redact.h"

namespace pullagent {
namespace {

using std::chrono::seconds;

TEST(Base64, BothAlphabetsPaddingOptionalNothingElse) {
  EXPECT_EQ(decodeBase64("SGVsbG8="), "Hello");
  EXPECT_EQ(decodeBase64("SGVsbG8"), "Hello");
  EXPECT_EQ(decodeBase64("SGVs\nbG8=\n"), "Hello");  // line-wrapped
  EXPECT_EQ(decodeBase64("-_8"), decodeBase64("+/8"));
  EXPECT_EQ(decodeBase64(""), "");
  EXPECT_FALSE(decodeBase64("SGVs!G8=").has_value());
  EXPECT_FALSE(decodeBase64("SG=Vs").has_value());  // padding only at the end
  EXPECT_FALSE(decodeBase64("SGVsb").has_value());  // a dangling 6 bits
  EXPECT_FALSE(decodeBase64("SGVsbG8===").has_value());
  EXPECT_EQ(decodeBase64("SGVsbG8=", 5), "Hello");
  for (const char* text : {"", "a", "ab", "abc", "Hello, world\n\xff"})
    EXPECT_EQ(decodeBase64(encodeBase64(text)), std::string(text));
  EXPECT_EQ(encodeBase64("user:pa55"), "dXNlcjpwYTU1");
  EXPECT_FALSE(decodeBase64("SGVsbG8=", 4).has_value());
}

TEST(AnnouncedTimes, AreClampedBeforeArithmetic) {
  EXPECT_EQ(clampedSeconds(30), seconds(30));
  EXPECT_EQ(clampedSeconds(-5), seconds(0));
  EXPECT_EQ(clampedSeconds(std::nan("")), seconds(0));
  EXPECT_EQ(clampedSeconds(9.3e18), kMaxAnnouncedDuration);
  EXPECT_EQ(clampedSeconds(1e308), kMaxAnnouncedDuration);
  EXPECT_EQ(clampedSeconds(std::numeric_limits<double>::infinity(), seconds(60)), seconds(60));
}

TEST(AnnouncedTimes, UnixSecondsOutsideTheClockAreRefused) {
  EXPECT_TRUE(fromUnixSeconds(1.8e9).has_value());
  EXPECT_FALSE(fromUnixSeconds(-1).has_value());
  EXPECT_FALSE(fromUnixSeconds(9.2e18).has_value());
  EXPECT_FALSE(fromUnixSeconds(1e308).has_value());
  EXPECT_FALSE(fromUnixSeconds(std::nan("")).has_value());
  const auto now = std::chrono::system_clock::time_point(seconds(1'800'000'000));
  EXPECT_EQ(secondsUntil(*fromUnixSeconds(1'800'000'100), now), seconds(100));
  EXPECT_EQ(secondsUntil(*fromUnixSeconds(1'700'000'000), now), seconds(0));
  EXPECT_EQ(secondsUntil(*fromUnixSeconds(7.0e9), now), kMaxAnnouncedDuration);
}

TEST(SafeText, EscapesControlsEscapeSequencesAndBadUtf8) {
  EXPECT_EQ(safeEscaped("plain text"), "plain text");
  EXPECT_EQ(safeEscaped("a\nb\r\tc"), "a\\nb\\r\\tc");
  EXPECT_EQ(safeEscaped(std::string("x\0<2>y", 6)), "x\\x00<2>y");
  EXPECT_EQ(safeEscaped("\x1b[31mred"), "\\x1b[31mred");
  EXPECT_EQ(safeEscaped("back\\slash"), "back\\\\slash");
  EXPECT_EQ(safeEscaped("caf\xc3\xa9"), "caf\xc3\xa9");  // valid UTF-8 kept
  EXPECT_EQ(safeEscaped("bad\xc3("), "bad\\xc3(");       // truncated sequence
  EXPECT_EQ(safeEscaped("\xc2\x9b"
                        "31m"),
            "\\xc2\\x9b31m");                                 // C1 CSI
  EXPECT_EQ(safeEscaped("\xed\xa0\x80"), "\\xed\\xa0\\x80");  // a surrogate
  EXPECT_EQ(safeQuoted(std::string(300, 'a'), 4), "\"aaaa...(300 bytes)\"");
}

}  // namespace
}  // namespace pullagent
