#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace pullagent::testing {

struct ProcessResult {
  int exit_code = -1;  // exit status, or 128 + signal
  std::string out;     // stdout
  std::string err;     // stderr
  std::string all() const { return out + err; }
};

// Runs a program to completion (killed after `timeout`), capturing stdout and stderr.
// `extra_env` ("NAME=value") is added to this process's environment for the child.
ProcessResult runProcess(const std::vector<std::string>& argv,
                         std::chrono::seconds timeout = std::chrono::seconds(120),
                         const std::string& stdin_data = "",
                         const std::vector<std::string>& extra_env = {});

// A program started in the background; killed (SIGKILL) when the object goes.
class BackgroundProcess {
 public:
  // stdout is read through a pipe; stdin stays an open pipe until the process is stopped, so
  // a child that watches stdin (the test stack) dies with us.
  // `extra_env` as for runProcess; stderr goes to `stderr_path` when given (else inherited).
  // `listen_fds` become the child's descriptors 3, 4, ... with LISTEN_PID set to the child's
  // pid (socket activation and systemd's file descriptor store; the caller sets LISTEN_FDS and
  // LISTEN_FDNAMES in extra_env).
  explicit BackgroundProcess(const std::vector<std::string>& argv,
                             const std::vector<std::string>& extra_env = {},
                             const std::string& stderr_path = "",
                             const std::vector<int>& listen_fds = {});
  ~BackgroundProcess();
  BackgroundProcess(const BackgroundProcess&) = delete;
  BackgroundProcess& operator=(const BackgroundProcess&) = delete;

  pid_t pid() const { return pid_; }
  // Reads stdout lines until one equals `line` (true) or EOF/timeout (false).
  bool waitForLine(const std::string& line, std::chrono::seconds timeout);
  // Reads stdout lines until one starts with `prefix`: that line, or nothing at EOF/timeout.
  std::optional<std::string> waitForLineStartingWith(const std::string& prefix,
                                                     std::chrono::seconds timeout);
  void kill(int signal);
  // Waits for exit; returns the exit code (128 + signal when killed).
  int wait();

 private:
  pid_t pid_ = -1;
  int stdin_fd_ = -1;
  int stdout_fd_ = -1;
  bool reaped_ = false;
  int status_ = 0;
};

}  // namespace pullagent::testing
