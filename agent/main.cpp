// pullagent: thin entry point. Parses the subcommand, sets up process-wide state (signals,
// terminal and journal detection, the environment) and hands over to the command.
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "agent/cli/gc_command.h"
#include "agent/cli/images_command.h"
#include "agent/cli/mount_command.h"
#include "agent/cli/once_command.h"
#include "agent/cli/pull_command.h"
#include "agent/cli/refresh_command.h"
#include "agent/cli/status_command.h"
#include "agent/cli/version_command.h"
#include "agent/common/exit_codes.h"
#include "agent/daemon/daemon.h"

namespace {

constexpr const char* kUsage = R"(usage: pullagent [COMMAND] [options]

commands:
  (none)                   run as the service: keep every site's image published
                           (pullagent --help-daemon)
  --once --site SITE.json  pull and publish one App Service site's image (--once --help)
  status [SITE]            what the service recorded for each site (pullagent status --help)
  refresh [SITE...]        have the service re-resolve the sites' tags now (refresh --help)
  pull IMAGE ...           pull an image; unpack and publish it (pullagent pull --help)
  images                   the published images and the disk each uses (images --help)
  gc                       remove images, snapshots and blobs no longer kept (gc --help)
  mount IMAGE TARGET       mount a published image's root filesystem (pullagent mount --help)
  unmount TARGET           unmount it again
  --version                this build and the libraries it runs with
)";

// systemd sets JOURNAL_STREAM to "<dev>:<inode>" of the stream it connected to stderr.
bool stderrIsJournal() {
  const char* stream = std::getenv("JOURNAL_STREAM");
  struct stat info {};
  if (stream == nullptr || ::fstat(STDERR_FILENO, &info) != 0)
    return false;
  return std::string(stream) == std::to_string(info.st_dev) + ":" + std::to_string(info.st_ino);
}

}  // namespace

extern char** environ;

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (!args.empty() && (args[0] == "--help" || args[0] == "-h")) {
    std::cerr << kUsage;
    return pullagent::agent::kExitOk;
  }
  if (!args.empty() && (args[0] == "--version" || args[0] == "version")) {
    pullagent::agent::printVersion();
    return pullagent::agent::kExitOk;
  }

  // SIGINT/SIGTERM become a stop request that every blocking call observes, SIGHUP a reload
  // request the daemon polls; a dedicated thread waits for them so no work happens in a signal
  // handler. Blocked before any other thread starts, so every thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::stop_source stop;
  const int reload_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  // status and images only read, and gc is crash-safe (it renames a tree aside before deleting it):
  // they end at once on a signal. Every command ends at once on a second one.
  const bool exit_at_once =
      !args.empty() && (args[0] == "status" || args[0] == "images" || args[0] == "gc");
  std::jthread signal_waiter([&stop, signals, reload_fd, exit_at_once] {
    bool stopping = false;
    while (true) {
      int received = 0;
      if (sigwait(&signals, &received) != 0)
        return;
      if (received == SIGHUP) {
        uint64_t one = 1;
        if (::write(reload_fd, &one, sizeof one) < 0) {
          // Saturated counter: a reload is already pending.
        }
        continue;
      }
      if (exit_at_once || stopping)
        ::_exit(128 + received);
      stopping = true;
      stop.request_stop();
    }
  });
  signal_waiter.detach();

  pullagent::agent::ProcessEnvironment env;
  env.stderr_is_terminal = ::isatty(STDERR_FILENO) != 0;
  env.stop = stop.get_token();
  env.privileged = ::geteuid() == 0;
  env.stderr_is_journal = stderrIsJournal();
  env.reload_fd = reload_fd;

  // Environment variables are read here and nowhere else (IDENTITY_ENDPOINT/HEADER,
  // NOTIFY_SOCKET, WATCHDOG_USEC).
  std::map<std::string, std::string> environment;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    std::string text = *entry;
    auto eq = text.find('=');
    if (eq != std::string::npos)
      environment[text.substr(0, eq)] = text.substr(eq + 1);
  }

  if (args.empty() || args[0] == "--help-daemon" ||
      (args[0].starts_with("--") && args[0] != "--once")) {
    if (!args.empty() && args[0] == "--help-daemon")
      args[0] = "--help";
    return pullagent::agent::runDaemon(args, env, environment);
  }
  const std::string command = args[0];
  args.erase(args.begin());
  if (command == "pull")
    return pullagent::agent::runPullCommand(args, env, environment);
  if (command == "gc")
    return pullagent::agent::runGcCommand(args, env, environment);
  if (command == "mount")
    return pullagent::agent::runMountCommand(args, env, environment);
  if (command == "unmount")
    return pullagent::agent::runUnmountCommand(args, env);
  if (command == "status")
    return pullagent::agent::runStatusCommand(args, env, environment);
  if (command == "images")
    return pullagent::agent::runImagesCommand(args, env, environment);
  if (command == "refresh")
    return pullagent::agent::runRefreshCommand(args, env, environment);
  if (command == "--once")
    return pullagent::agent::runOnceCommand(args, env, environment);
  std::cerr << "pullagent: unknown command \"" << command << "\"\n" << kUsage;
  return pullagent::agent::kExitUsage;
}
