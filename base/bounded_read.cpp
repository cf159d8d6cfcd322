#include "base/bounded_read.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "base/atomic_file.h"
#include "base/unique_fd.h"

namespace pullagent {

Result<std::string> readRegularFile(const std::filesystem::path& path, size_t max_bytes,
                                    Links links) {
  int flags = O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
  if (links == Links::kRefuse)
    flags |= O_NOFOLLOW;
  UniqueFd fd(::open(path.c_str(), flags));
  if (!fd.valid()) {
    if (errno == ELOOP && links == Links::kRefuse) {
      return makeError(ErrorCode::kInvalidArgument,
                       path.string() + " is a symbolic link, which is not followed here");
    }
    return errnoError(errno, "open", path);
  }
  struct stat info {};
  if (::fstat(fd.get(), &info) != 0)
    return errnoError(errno, "stat", path);
  if (!S_ISREG(info.st_mode))
    return makeError(ErrorCode::kInvalidArgument, path.string() + " is not a regular file");
  if (static_cast<uint64_t>(info.st_size) > max_bytes) {
    return makeError(ErrorCode::kResourceExhausted,
                     path.string() + " is " + std::to_string(info.st_size) +
                         " bytes, more than the " + std::to_string(max_bytes) + " allowed");
  }
  std::string content;
  content.resize(static_cast<size_t>(info.st_size));
  size_t filled = 0;
  // The size can change under us: read until EOF, but never past the cap.
  while (true) {
    if (filled == content.size()) {
      if (content.size() > max_bytes) {
        return makeError(
            ErrorCode::kResourceExhausted,
            path.string() + " grew past the " + std::to_string(max_bytes) + " bytes allowed");
      }
      content.resize(std::max<size_t>(content.size() * 2, 4096));
    }
    ssize_t n = ::read(fd.get(), content.data() + filled, content.size() - filled);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return errnoError(errno, "read", path);
    }
    if (n == 0)
      break;
    filled += static_cast<size_t>(n);
  }
  if (filled > max_bytes) {
    return makeError(
        ErrorCode::kResourceExhausted,
        path.string() + " grew past the " + std::to_string(max_bytes) + " bytes allowed");
  }
  content.resize(filled);
  return content;
}

}  // namespace pullagent
