#include "base/log.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <string>

#include "tests/support/temp_dir.h"

namespace pullagent {
namespace {

// What one record logged in `format` writes to stderr.
std::string logged(LogFormat format, const std::string& message) {
  testing::TempDir dir;
  const auto path = dir / "stderr";
  const int saved = ::dup(STDERR_FILENO);
  const int file = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  ::dup2(file, STDERR_FILENO);
  initLogging(format, spdlog::level::info);
  spdlog::warn("site {}: pulling {}", "web", message);
  spdlog::default_logger()->flush();
  ::dup2(saved, STDERR_FILENO);
  ::close(saved);
  ::close(file);
  return testing::readFile(path);
}

// A tenant's image reference that tries to forge records, mint a journald priority after a NUL,
// recolour a terminal and slip in invalid UTF-8.
const std::string kForgery = std::string("evil:v1\n2026-11-27T00:00:00.000Z error forged\r") +
                             std::string("\0<2>crit", 8) + "\x1b[2J\x1b]0;title\x07" + "\xff\xfe" +
                             "\xc2\x9b" + "31m";

void expectOneSafeLine(const std::string& line) {
  ASSERT_FALSE(line.empty());
  EXPECT_EQ(line.find('\n'), line.size() - 1) << line;
  for (char c : line.substr(0, line.size() - 1)) {
    EXPECT_FALSE(static_cast<unsigned char>(c) < 0x20 || c == 0x7f) << static_cast<int>(c);
  }
  EXPECT_EQ(line.find("\xff"), std::string::npos);
  EXPECT_EQ(line.find("\xc2\x9b"), std::string::npos);
}

TEST(Logging, TextRecordsStayOneEscapedLine) {
  const std::string line = logged(LogFormat::kText, kForgery);
  expectOneSafeLine(line);
  EXPECT_NE(line.find(" warning site web: pulling evil:v1\\n2026"), std::string::npos) << line;
  EXPECT_NE(line.find("\\x00<2>crit\\x1b[2J"), std::string::npos) << line;
}

TEST(Logging, JournalRecordsKeepTheirOwnPriorityOnly) {
  const std::string line = logged(LogFormat::kJournal, kForgery);
  expectOneSafeLine(line);
  EXPECT_TRUE(line.starts_with("<4>site web: pulling evil:v1\\n")) << line;
}

TEST(Logging, JsonRecordsEscapeEverything) {
  const std::string line = logged(LogFormat::kJson, kForgery);
  expectOneSafeLine(line);
  auto record = nlohmann::json::parse(line);
  EXPECT_EQ(record["level"], "warning");
  EXPECT_NE(record["msg"].get<std::string>().find("\x1b[2J"), std::string::npos);  // as data
}

TEST(Logging, HugeRecordsAreCut) {
  const std::string line = logged(LogFormat::kText, std::string(1 << 20, 'x'));
  EXPECT_LT(line.size(), 17u * 1024);
}

}  // namespace
}  // namespace pullagent
