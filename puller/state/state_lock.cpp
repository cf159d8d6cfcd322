#include "puller/state/state_lock.h"

#include <fcntl.h>
#include <sys/file.h>

#include <cerrno>
#include <system_error>

#include "base/atomic_file.h"

namespace pullagent::puller {

Result<StateLock> StateLock::acquire(const StateDir& state, Mode mode) {
  return lock(state, mode, true);
}

Result<StateLock> StateLock::tryAcquire(const StateDir& state, Mode mode) {
  return lock(state, mode, false);
}

Result<StateLock> StateLock::lock(const StateDir& state, Mode mode, bool wait) {
  std::error_code ec;
  std::filesystem::create_directories(state.root(), ec);
  if (ec)
    return errnoError(ec.value(), "create directory", state.root());
  const auto path = state.lockFile();
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!fd.valid())
    return errnoError(errno, "open", path);
  // Blocking: a collection takes seconds, and a pull waiting for it is the right order.
  const int operation = (mode == Mode::kShared ? LOCK_SH : LOCK_EX) | (wait ? 0 : LOCK_NB);
  while (::flock(fd.get(), operation) != 0) {
    if (errno == EWOULDBLOCK && !wait)
      return makeError(ErrorCode::kUnavailable, path.string() + " is held by another process");
    if (errno != EINTR)
      return errnoError(errno, "lock", path);
  }
  return StateLock(std::move(fd));
}

}  // namespace pullagent::puller
