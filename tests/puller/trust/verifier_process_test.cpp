// External verifiers (containerd's bindir contract) and the process runner beneath them, with
// /bin/sh scripts for verifiers.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "base/clock.h"
#include "puller/trust/external_verifiers.h"
#include "puller/trust/verifier_process.h"
#include "tests/support/temp_dir.h"

namespace pullagent::puller {
namespace {

using namespace std::chrono_literals;
using testing::readFile;
using testing::TempDir;
using testing::writeFile;

class VerifierProcess : public ::testing::Test {
 protected:
  Result<VerifierRun> shell(const std::string& script, const std::string& input = "",
                            std::chrono::milliseconds timeout = 5000ms) {
    return runVerifierProcess("/bin/sh", {"-c", script}, input, timeout, ctx_);
  }
  SystemClock clock_;
  Context ctx_{&clock_, {}, std::nullopt};
};

TEST_F(VerifierProcess, InputOutputAndExitCodeGoWhereTheyShould) {
  auto run = shell("cat; echo done >&2; exit 3", "hello");
  ASSERT_TRUE(run.ok()) << run.error().message;
  EXPECT_EQ(run->out, "hello");
  EXPECT_EQ(run->err, "done\n");
  EXPECT_EQ(run->exit_code, 3);
}

TEST_F(VerifierProcess, AVerifierGetsNoneOfTheAgentsEnvironment) {
  ::setenv("IDENTITY_HEADER", "secret-header-value", 1);
  auto run = shell("env");
  ::unsetenv("IDENTITY_HEADER");
  ASSERT_TRUE(run.ok());
  EXPECT_EQ(run->out.find("secret-header-value"), std::string::npos) << run->out;
  EXPECT_NE(run->out.find("PATH="), std::string::npos);
}

TEST_F(VerifierProcess, ItsTimeIsBoundedAndItsGroupKilled) {
  const auto started = clock_.now();
  auto run = shell("sleep 30 & sleep 30", "", 300ms);
  ASSERT_FALSE(run.ok());
  EXPECT_EQ(run.error().code, ErrorCode::kTimeout);
  EXPECT_LT(clock_.now() - started, 10s);
}

TEST_F(VerifierProcess, OneThatClosesItsOutputIsStillBoundInTime) {
  const auto started = clock_.now();
  auto run = shell("exec >&- 2>&-; sleep 30", "", 300ms);
  ASSERT_FALSE(run.ok());
  EXPECT_EQ(run.error().code, ErrorCode::kTimeout);
  EXPECT_LT(clock_.now() - started, 10s);
}

TEST_F(VerifierProcess, WhatItLeavesBehindHoldingThePipesDoesNotTurnAnAnswerIntoATimeout) {
  const auto started = clock_.now();
  auto run = shell("sleep 30 & echo allowed; exit 0", "", 10000ms);
  ASSERT_TRUE(run.ok()) << run.error().message;
  EXPECT_EQ(run->exit_code, 0);
  EXPECT_EQ(run->out, "allowed\n");
  EXPECT_LT(clock_.now() - started, 5s);
}

TEST_F(VerifierProcess, OutputIsBoundedAndAnUnreadInputDoesNotHurtTheAgent) {
  auto run = shell("head -c 100000 /dev/zero; exit 0", std::string(1 << 20, 'x'));
  ASSERT_TRUE(run.ok()) << run.error().message;
  EXPECT_EQ(run->out.size(), kMaxVerifierOutput);
  EXPECT_EQ(run->exit_code, 0);
  EXPECT_EQ(escapedOutput(std::string("ok\x01\xff\n"), 100), "ok\\x01\\xff");
  EXPECT_EQ(escapedOutput("abcdef", 3), "abc…");
}

class ExternalVerifiers : public ::testing::Test {
 protected:
  void SetUp() override {
    config_.bin_dir = dir_ / "bin";
    std::filesystem::create_directory(config_.bin_dir);
    ::chmod(config_.bin_dir.c_str(), 0755);
    subject_.media_type = "application/vnd.oci.image.index.v1+json";
    subject_.digest = Digest::parse("sha256:" + std::string(64, 'a')).value();
    subject_.size = 2048;
  }
  void verifier(const std::string& name, const std::string& script, mode_t mode = 0755) {
    const auto path = config_.bin_dir / name;
    writeFile(path, "#!/bin/sh\n" + script + "\n");
    ::chmod(path.c_str(), mode);
  }
  Result<std::string> verify(bool* refused = nullptr) {
    return runExternalVerifiers(config_, "reg.io/app:v1", subject_, ctx_, refused);
  }
  TempDir dir_;
  ExternalVerifierConfig config_;
  Descriptor subject_;
  SystemClock clock_;
  Context ctx_{&clock_, {}, std::nullopt};
};

TEST_F(ExternalVerifiers, EachGetsContainerdsArgumentsAndTheDescriptor) {
  verifier("a-records", "echo \"$@\" > " + (dir_ / "args").string() + "; cat > " +
                            (dir_ / "stdin").string() + "; echo fine");
  auto judged = verify();
  ASSERT_TRUE(judged.ok()) << judged.error().message;
  EXPECT_EQ(*judged, "a-records => fine");
  EXPECT_EQ(readFile(dir_ / "args"),
            "-name reg.io/app:v1 -digest sha256:" + std::string(64, 'a') +
                " -stdin-media-type application/vnd.oci.descriptor.v1+json\n");
  auto descriptor = nlohmann::json::parse(readFile(dir_ / "stdin"));
  EXPECT_EQ(descriptor["mediaType"], subject_.media_type);
  EXPECT_EQ(descriptor["size"], 2048);
}

TEST_F(ExternalVerifiers, AllMustAllowAndTheOneThatBlocksIsNamed) {
  verifier("1-allow", "echo yes");
  verifier("2-deny", "printf 'unsigned image\\033[31m'; exit 7");
  bool refused = false;
  auto judged = verify(&refused);
  ASSERT_FALSE(judged.ok());
  EXPECT_TRUE(refused);
  EXPECT_EQ(judged.error().code, ErrorCode::kUntrusted);
  EXPECT_NE(judged.error().message.find(
                "verifier 2-deny rejected reg.io/app:v1 (exit code 7): unsigned image\\x1b[31m"),
            std::string::npos)
      << judged.error().message;
  // Only the first by name, when one may run.
  config_.max_verifiers = 1;
  EXPECT_TRUE(verify().ok());
}

TEST_F(ExternalVerifiers, NothingToRunBlocksNothingAndAnUnsafeVerifierBlocksAll) {
  auto judged = verify();
  ASSERT_TRUE(judged.ok());
  EXPECT_NE(judged->find("is empty"), std::string::npos);
  config_.bin_dir = dir_ / "missing";
  EXPECT_TRUE(verify().ok());
  config_.bin_dir = dir_ / "bin";
  verifier("writable", "exit 0", 0775);
  bool refused = false;
  judged = verify(&refused);
  ASSERT_FALSE(judged.ok());
  EXPECT_TRUE(refused);
  EXPECT_NE(judged.error().message.find("is writable by its group or by others"),
            std::string::npos);
  // A verifier that cannot finish in time is no verdict: the attempt fails, not refused.
  std::filesystem::remove(config_.bin_dir / "writable");
  verifier("slow", "sleep 30");
  config_.per_verifier_timeout = 1s;
  refused = false;
  judged = verify(&refused);
  ASSERT_FALSE(judged.ok());
  EXPECT_FALSE(refused);
  EXPECT_EQ(judged.error().code, ErrorCode::kTimeout);
}

}  // namespace
}  // namespace pullagent::puller
