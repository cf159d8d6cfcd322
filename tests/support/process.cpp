#include "tests/support/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <stdexcept>

namespace pullagent::testing {
namespace {

std::vector<char*> cArgs(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const auto& arg : argv)
    args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  return args;
}

int decodeStatus(int status) {
  if (WIFEXITED(status))
    return WEXITSTATUS(status);
  if (WIFSIGNALED(status))
    return 128 + WTERMSIG(status);
  return -1;
}

[[noreturn]] void execChild(const std::vector<std::string>& argv,
                            const std::vector<std::string>& extra_env = {}) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  // Unblock what the parent may have blocked (signals are inherited).
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  auto args = cArgs(argv);
  for (const auto& entry : extra_env)
    ::putenv(const_cast<char*>(entry.c_str()));
  ::execv(args[0], args.data());
  ::_exit(127);
}

}  // namespace

ProcessResult runProcess(const std::vector<std::string>& argv, std::chrono::seconds timeout,
                         const std::string& stdin_data, const std::vector<std::string>& extra_env) {
  std::array<int, 2> in{}, out{}, err{};
  if (::pipe2(in.data(), O_CLOEXEC) != 0 || ::pipe2(out.data(), O_CLOEXEC) != 0 ||
      ::pipe2(err.data(), O_CLOEXEC) != 0) {
    throw std::runtime_error("pipe failed");
  }
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(in[0], 0);
    ::dup2(out[1], 1);
    ::dup2(err[1], 2);
    execChild(argv, extra_env);
  }
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  if (!stdin_data.empty()) {
    ssize_t written = ::write(in[1], stdin_data.data(), stdin_data.size());
    (void)written;
  }
  ::close(in[1]);

  ProcessResult result;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::array<pollfd, 2> fds{pollfd{out[0], POLLIN, 0}, pollfd{err[0], POLLIN, 0}};
  int open_fds = 2;
  std::array<char, 65536> buffer{};
  while (open_fds > 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      ::kill(pid, SIGKILL);
      break;
    }
    if (::poll(fds.data(), fds.size(), static_cast<int>(left.count())) <= 0)
      continue;
    for (size_t i = 0; i < fds.size(); ++i) {
      if (fds[i].fd < 0 || (fds[i].revents & (POLLIN | POLLHUP)) == 0)
        continue;
      ssize_t n = ::read(fds[i].fd, buffer.data(), buffer.size());
      if (n <= 0) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      } else {
        (i == 0 ? result.out : result.err).append(buffer.data(), static_cast<size_t>(n));
      }
    }
  }
  for (auto& fd : fds) {
    if (fd.fd >= 0)
      ::close(fd.fd);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  result.exit_code = decodeStatus(status);
  return result;
}

BackgroundProcess::BackgroundProcess(const std::vector<std::string>& argv,
                                     const std::vector<std::string>& extra_env,
                                     const std::string& stderr_path,
                                     const std::vector<int>& listen_fds) {
  // Made before the fork: the child only copies descriptors and writes its pid in place.
  static char listen_pid[32];
  std::array<int, 2> in{}, out{};
  if (::pipe2(in.data(), O_CLOEXEC) != 0 || ::pipe2(out.data(), O_CLOEXEC) != 0) {
    throw std::runtime_error("pipe failed");
  }
  pid_ = ::fork();
  if (pid_ == 0) {
    ::dup2(in[0], 0);
    ::dup2(out[1], 1);
    if (!stderr_path.empty()) {
      int err = ::open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      if (err >= 0)
        ::dup2(err, 2);
    }
    if (!listen_fds.empty()) {
      // Out of the way first, so that no descriptor is overwritten before it is copied.
      int moved[64];
      const size_t count = std::min<size_t>(listen_fds.size(), 64);
      for (size_t i = 0; i < count; ++i)
        moved[i] = ::fcntl(listen_fds[i], F_DUPFD_CLOEXEC, 1000);
      for (size_t i = 0; i < count; ++i)
        ::dup2(moved[i], static_cast<int>(3 + i));  // not close-on-exec
      char digits[16];
      int length = 0;
      for (pid_t pid = ::getpid(); pid > 0; pid /= 10)
        digits[length++] = static_cast<char>('0' + pid % 10);
      std::memcpy(listen_pid, "LISTEN_PID=", 11);
      for (int i = 0; i < length; ++i)
        listen_pid[11 + i] = digits[length - 1 - i];
      listen_pid[11 + length] = '\0';
      ::putenv(listen_pid);
    }
    execChild(argv, extra_env);
  }
  ::close(in[0]);
  ::close(out[1]);
  stdin_fd_ = in[1];
  stdout_fd_ = out[0];
}

BackgroundProcess::~BackgroundProcess() {
  if (!reaped_) {
    kill(SIGKILL);
    wait();
  }
  if (stdin_fd_ >= 0)
    ::close(stdin_fd_);
  if (stdout_fd_ >= 0)
    ::close(stdout_fd_);
}

bool BackgroundProcess::waitForLine(const std::string& line, std::chrono::seconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    auto seconds_left =
        std::chrono::ceil<std::chrono::seconds>(deadline - std::chrono::steady_clock::now());
    auto read = waitForLineStartingWith(line, seconds_left);
    if (!read)
      return false;
    if (*read == line)
      return true;
  }
  return false;
}

std::optional<std::string> BackgroundProcess::waitForLineStartingWith(
    const std::string& prefix, std::chrono::seconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string pending;
  char c = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd fd{stdout_fd_, POLLIN, 0};
    if (::poll(&fd, 1, 100) <= 0)
      continue;
    if (::read(stdout_fd_, &c, 1) != 1)
      return std::nullopt;
    if (c == '\n') {
      if (pending.starts_with(prefix))
        return pending;
      pending.clear();
    } else {
      pending.push_back(c);
    }
  }
  return std::nullopt;
}

void BackgroundProcess::kill(int signal) {
  if (!reaped_ && pid_ > 0)
    ::kill(pid_, signal);
}

int BackgroundProcess::wait() {
  if (!reaped_) {
    if (stdin_fd_ >= 0) {
      ::close(stdin_fd_);
      stdin_fd_ = -1;
    }
    ::waitpid(pid_, &status_, 0);
    reaped_ = true;
  }
  return decodeStatus(status_);
}

}  // namespace pullagent::testing
