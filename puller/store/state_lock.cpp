#include "puller/store/state_lock.h"

#include <fcntl.h>
#include <sys/file.h>

#include <cerrno>
#include <system_error>

#include "base/atomic_file.h"

namespace pullagent::puller {

Result<StateLock> StateLock::acquire(const std::filesystem::path& state_dir, Mode mode) {
  std::error_code ec;
  std::filesystem::create_directories(state_dir, ec);
  if (ec)
    return errnoError(ec.value(), "create directory", state_dir);
  auto path = state_dir / "state.lock";
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!fd.valid())
    return errnoError(errno, "open", path);
  // Blocking: a collection takes seconds, and a pull waiting for it is the right order.
  while (::flock(fd.get(), mode == Mode::kShared ? LOCK_SH : LOCK_EX) != 0) {
    if (errno != EINTR)
      return errnoError(errno, "lock", path);
  }
  return StateLock(std::move(fd));
}

}  // namespace pullagent::puller
