// sd_notify: readiness, status and the watchdog.
#include "agent/daemon/systemd_notifier.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <optional>
#include <string>

#include "tests/support/notify_socket.h"
#include "tests/support/temp_dir.h"

namespace pullagent::agent {
namespace {

// Sets an environment variable for one test and puts back what was there.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name))
      old_ = old;
    if (value != nullptr)
      ::setenv(name, value, 1);
    else
      ::unsetenv(name);
  }
  ~ScopedEnv() {
    if (old_)
      ::setenv(name_, old_->c_str(), 1);
    else
      ::unsetenv(name_);
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

TEST(SystemdNotifier, SendsToTheSocketAndReadsTheWatchdog) {
  testing::TempDir dir{"pullagent-notify"};
  testing::NotifySocket socket((dir.path() / "notify").string());
  {
    ScopedEnv notify_socket("NOTIFY_SOCKET", socket.path().c_str());
    ScopedEnv usec("WATCHDOG_USEC", "3000000");
    ScopedEnv pid("WATCHDOG_PID", std::to_string(::getpid()).c_str());
    auto notifier = SystemdNotifier::fromProcess();
    ASSERT_TRUE(notifier.enabled());
    EXPECT_EQ(notifier.watchdogInterval(), std::chrono::seconds(3));
    notifier.notify("READY=1\nSTATUS=idle");
    EXPECT_TRUE(socket.waitForLine("STATUS=idle", std::chrono::seconds(5)));
  }
  // Not started by systemd, or the watchdog meant for another process: nothing.
  {
    ScopedEnv notify_socket("NOTIFY_SOCKET", nullptr);
    ScopedEnv usec("WATCHDOG_USEC", nullptr);
    auto absent = SystemdNotifier::fromProcess();
    EXPECT_FALSE(absent.enabled());
    EXPECT_FALSE(absent.watchdogInterval().has_value());
    absent.notify("READY=1");
  }
  {
    ScopedEnv usec("WATCHDOG_USEC", "3000000");
    ScopedEnv pid("WATCHDOG_PID", "1");
    EXPECT_FALSE(SystemdNotifier::fromProcess().watchdogInterval().has_value());
  }
}

}  // namespace
}  // namespace pullagent::agent
