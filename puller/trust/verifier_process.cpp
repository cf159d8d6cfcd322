#include "puller/trust/verifier_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <optional>

#include <pthread.h>

#include "base/unique_fd.h"

namespace pullagent::puller {
namespace {

struct Pipe {
  UniqueFd read;
  UniqueFd write;
};

Result<Pipe> makePipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0)
    return makeError(ErrorCode::kInternal, std::string("pipe: ") + std::strerror(errno));
  return Pipe{UniqueFd(fds[0]), UniqueFd(fds[1])};
}

// A write to a pipe whose reader is gone raises SIGPIPE, which would end the agent: blocked in
// this thread for the write, and a SIGPIPE it raised taken off the thread's pending set.
ssize_t writeWithoutSigpipe(int fd, const char* data, size_t size) {
  sigset_t pipe_only;
  sigemptyset(&pipe_only);
  sigaddset(&pipe_only, SIGPIPE);
  sigset_t previous;
  pthread_sigmask(SIG_BLOCK, &pipe_only, &previous);
  const ssize_t n = ::write(fd, data, size);
  const int saved = errno;
  if (n < 0 && saved == EPIPE) {
    const timespec zero{};
    while (sigtimedwait(&pipe_only, nullptr, &zero) < 0 && errno == EINTR) {
    }
  }
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  errno = saved;
  return n;
}

}  // namespace

std::string escapedOutput(const std::string& text, size_t limit) {
  std::string out;
  for (const char c : text.substr(0, limit)) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte == '\n' || byte == '\t' || (byte >= 0x20 && byte < 0x7f)) {
      out += c;
    } else {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[byte >> 4];
      out += kHex[byte & 0xf];
    }
  }
  if (text.size() > limit)
    out += "…";
  while (!out.empty() && (out.back() == '\n' || out.back() == ' '))
    out.pop_back();
  return out;
}

Result<VerifierRun> runVerifierProcess(const std::filesystem::path& program,
                                       const std::vector<std::string>& arguments,
                                       const std::string& input, std::chrono::milliseconds timeout,
                                       const Context& ctx) {
  ASSIGN_OR_RETURN(auto in, makePipe());
  ASSIGN_OR_RETURN(auto out, makePipe());
  ASSIGN_OR_RETURN(auto err, makePipe());
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in.read.get(), 0);
  posix_spawn_file_actions_adddup2(&actions, out.write.get(), 1);
  posix_spawn_file_actions_adddup2(&actions, err.write.get(), 2);
  posix_spawn_file_actions_addchdir_np(&actions, "/");
  // Nothing else of the agent's reaches a verifier (sockets other threads opened without
  // O_CLOEXEC, say).
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  posix_spawnattr_setpgroup(&attributes, 0);
  sigset_t defaults;
  sigemptyset(&defaults);
  for (int signal : {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGCHLD})
    sigaddset(&defaults, signal);
  posix_spawnattr_setsigdefault(&attributes, &defaults);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attributes, &none);
  posix_spawnattr_setflags(&attributes,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);

  std::vector<std::string> argv_text{program.string()};
  argv_text.insert(argv_text.end(), arguments.begin(), arguments.end());
  std::vector<char*> argv;
  for (auto& text : argv_text)
    argv.push_back(text.data());
  argv.push_back(nullptr);
  std::string path = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  std::string lang = "LANG=C.UTF-8";
  std::array<char*, 3> environment{path.data(), lang.data(), nullptr};

  pid_t pid = -1;
  const int spawned =
      posix_spawn(&pid, program.c_str(), &actions, &attributes, argv.data(), environment.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  if (spawned != 0)
    return makeError(ErrorCode::kInternal,
                     "cannot run " + program.string() + ": " + std::strerror(spawned));
  in.read.reset();
  out.write.reset();
  err.write.reset();

  // Feed stdin and drain stdout and stderr together: a verifier that writes before it reads
  // all of its input must not deadlock against us.
  ::fcntl(in.write.get(), F_SETFL, O_NONBLOCK);
  size_t written = 0;
  if (input.empty())
    in.write.reset();
  VerifierRun run;
  const auto started = ctx.clock->now();
  std::optional<Error> failure;
  // Once the verifier itself has exited, what it left in its group may hold the pipes: they get
  // a moment more (as Go's WaitDelay), then the group goes.
  std::optional<std::chrono::steady_clock::time_point> exited_at;
  constexpr auto kGrace = std::chrono::seconds(1);
  std::array<char, 4096> buffer{};
  for (;;) {
    // Waited for without being reaped: the pid stays ours, and so does its process group,
    // until the group is killed below.
    siginfo_t info{};
    if (!exited_at &&
        ::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
        info.si_pid == pid)
      exited_at = ctx.clock->now();
    const bool pipes_open = out.read.valid() || err.read.valid();
    if (exited_at && (!pipes_open || ctx.clock->now() - *exited_at >= kGrace))
      break;
    auto left =
        timeout - std::chrono::duration_cast<std::chrono::milliseconds>(ctx.clock->now() - started);
    if (auto remaining = ctx.remaining())
      left = std::min(left, *remaining);
    if (left.count() <= 0 || ctx.stopRequested()) {
      failure = ctx.stopRequested() ? makeError(ErrorCode::kCancelled, "stop requested")
                                    : makeError(ErrorCode::kTimeout,
                                                program.filename().string() + " took longer than " +
                                                    std::to_string(timeout.count() / 1000) + " s");
      break;
    }
    std::vector<pollfd> fds;
    if (in.write.valid())
      fds.push_back({in.write.get(), POLLOUT, 0});
    if (out.read.valid())
      fds.push_back({out.read.get(), POLLIN, 0});
    if (err.read.valid())
      fds.push_back({err.read.get(), POLLIN, 0});
    // A short tick: the exit of a verifier that closed its pipes is seen by waitid above.
    const int tick = static_cast<int>(std::min<int64_t>(left.count(), 50));
    int ready = 0;
    if (fds.empty())
      ::usleep(static_cast<useconds_t>(tick) * 1000);
    else
      ready = ::poll(fds.data(), fds.size(), tick);
    if (ready < 0 && errno != EINTR) {
      failure = makeError(ErrorCode::kInternal, std::string("poll: ") + std::strerror(errno));
      break;
    }
    for (const auto& fd : fds) {
      if (fd.revents == 0)
        continue;
      if (in.write.valid() && fd.fd == in.write.get()) {
        const ssize_t n =
            writeWithoutSigpipe(fd.fd, input.data() + written, input.size() - written);
        if (n > 0)
          written += static_cast<size_t>(n);
        if (n < 0 && errno != EAGAIN)
          written = input.size();  // the verifier closed its stdin: fine
        if (written == input.size())
          in.write.reset();
        continue;
      }
      const bool is_out = out.read.valid() && fd.fd == out.read.get();
      const ssize_t n = ::read(fd.fd, buffer.data(), buffer.size());
      if (n <= 0) {
        if (n == 0 || errno != EINTR)
          (is_out ? out.read : err.read).reset();
        continue;
      }
      std::string& into = is_out ? run.out : run.err;
      const size_t room = kMaxVerifierOutput - std::min(kMaxVerifierOutput, into.size());
      into.append(buffer.data(), std::min(room, static_cast<size_t>(n)));
    }
  }
  // The group goes while its leader is not yet reaped (its id cannot have been reused); a
  // process that left the group (setsid) is beyond this.
  ::kill(-pid, SIGKILL);
  int status = -1;
  pid_t reaped = -1;
  while ((reaped = ::waitpid(pid, &status, 0)) < 0 && errno == EINTR) {
  }
  if (failure)
    return *failure;
  if (reaped != pid)
    return makeError(ErrorCode::kInternal,
                     "waitpid " + program.filename().string() + ": " + std::strerror(errno));
  if (WIFSIGNALED(status))
    return makeError(ErrorCode::kInternal, program.filename().string() + " was killed by signal " +
                                               std::to_string(WTERMSIG(status)));
  run.exit_code = WEXITSTATUS(status);
  return run;
}

}  // namespace pullagent::puller
