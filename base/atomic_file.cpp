#include "base/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <sys/random.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

namespace pullagent {

Status syncDirectory(const std::filesystem::path& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return errnoError(errno, "open directory", dir);
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0)
    return errnoError(err, "fsync directory", dir);
  return {};
}

Status writeFileAtomic(const std::filesystem::path& path, std::string_view content) {
  // An unpredictable name created exclusively and never through a link: a file or a link
  // planted beside `path` can make the write fail, never redirect it.
  std::filesystem::path tmp;
  int fd = -1;
  for (int tries = 0; fd < 0 && tries < 8; ++tries) {
    uint64_t nonce = 0;
    if (::getrandom(&nonce, sizeof nonce, 0) != static_cast<ssize_t>(sizeof nonce))
      return errnoError(errno, "getrandom for", path);
    char suffix[32];
    std::snprintf(suffix, sizeof suffix, ".tmp.%016llx", static_cast<unsigned long long>(nonce));
    tmp = path;
    tmp += suffix;
    fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0 && errno != EEXIST)
      return errnoError(errno, "create", tmp);
  }
  if (fd < 0)
    return errnoError(EEXIST, "create", tmp);
  const char* data = content.data();
  size_t left = content.size();
  while (left > 0) {
    ssize_t n = ::write(fd, data, left);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return errnoError(err, "write", tmp);
    }
    data += n;
    left -= static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    return errnoError(err, "fsync", tmp);
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return errnoError(err, "rename", path);
  }
  return syncDirectory(path.parent_path().empty() ? "." : path.parent_path());
}

}  // namespace pullagent
