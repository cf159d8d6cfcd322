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

#include "agent/cli/command.h"
#include "agent/cli/commands.h"
#include "agent/common/exit_codes.h"
#include "agent/daemon/daemon.h"

namespace {

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
  if (!args.empty() && (args[0] == "--help" || args[0] == "-h" || args[0] == "help")) {
    std::cout << pullagent::agent::mainUsage();
    return pullagent::agent::kExitOk;
  }
  if (!args.empty() && args[0] == "version")
    args[0] = "--version";
  // The service, unless the first argument names a command (the service's options start with
  // "--" too).
  const pullagent::agent::Command* command =
      args.empty() ? nullptr : pullagent::agent::findCommand(args[0]);
  if (command == nullptr && !args.empty() && !args[0].starts_with("--")) {
    std::cerr << "pullagent: unknown command \"" << args[0] << "\"\n"
              << pullagent::agent::mainUsage();
    return pullagent::agent::kExitUsage;
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
  const bool exit_at_once = command != nullptr && command->ends_at_once;
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

  if (command == nullptr) {
    if (!args.empty() && args[0] == "--help-daemon")
      args[0] = "--help";
    return pullagent::agent::runDaemon(args, env, environment);
  }
  args.erase(args.begin());
  return pullagent::agent::runCommand(*command, args, env, environment);
}
