#include "base/confined_root.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>

namespace pullagent {
namespace {

constexpr int kMaxSymlinks = 40;  // as the kernel's own limit

// Path components without empty ones and ".", keeping "..": symlink targets need them.
std::vector<std::string> pathComponents(std::string_view path) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= path.size()) {
    auto slash = path.find('/', start);
    auto part = path.substr(start, slash == std::string_view::npos ? path.npos : slash - start);
    if (!part.empty() && part != ".")
      parts.emplace_back(part);
    if (slash == std::string_view::npos)
      break;
    start = slash + 1;
  }
  return parts;
}

}  // namespace

Result<ConfinedRoot> ConfinedRoot::open(const std::filesystem::path& root) {
  int fd = ::open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return errnoError(errno, "open root", root.string());
  return ConfinedRoot(UniqueFd(fd));
}

Result<std::vector<std::string>> ConfinedRoot::split(std::string_view name) {
  auto parts = pathComponents(name);
  if (std::find(parts.begin(), parts.end(), "..") != parts.end()) {
    return makeError(ErrorCode::kInvalidArgument,
                     "archive entry \"" + std::string(name) + "\" climbs out with \"..\"");
  }
  return parts;
}

Result<std::vector<std::string>> ConfinedRoot::list(int dir_fd, std::string_view what) {
  int fd = ::openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return errnoError(errno, "open directory", what);
  DIR* dir = ::fdopendir(fd);
  if (dir == nullptr) {
    int err = errno;
    ::close(fd);
    return errnoError(err, "list directory", what);
  }
  std::vector<std::string> names;
  while (dirent* entry = ::readdir(dir)) {
    std::string name = entry->d_name;
    if (name != "." && name != "..")
      names.push_back(std::move(name));
  }
  ::closedir(dir);
  return names;
}

std::string ConfinedRoot::join(const std::vector<std::string>& components, size_t count) {
  std::string out;
  for (size_t i = 0; i < count && i < components.size(); ++i) {
    if (i > 0)
      out.push_back('/');
    out += components[i];
  }
  return out;
}

Result<UniqueFd> ConfinedRoot::openDirectory(const std::vector<std::string>& components,
                                             size_t count, bool create) const {
  std::deque<std::string> pending(components.begin(),
                                  components.begin() + static_cast<long>(count));
  std::vector<UniqueFd> stack;  // directories from the root down; empty = at the root
  int links = 0;
  auto current = [&] { return stack.empty() ? root_.get() : stack.back().get(); };
  const std::string where = join(components, count);

  while (!pending.empty()) {
    std::string part = std::move(pending.front());
    pending.pop_front();
    if (part.empty() || part == ".")
      continue;
    if (part == "..") {
      if (!stack.empty())
        stack.pop_back();  // never above the root
      continue;
    }
    int fd = ::openat(current(), part.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT && create) {
      if (::mkdirat(current(), part.c_str(), 0755) != 0 && errno != EEXIST) {
        return errnoError(errno, "create directory", where);
      }
      fd = ::openat(current(), part.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
    }
    if (fd < 0)
      return errnoError(errno, "open directory", where);
    UniqueFd next(fd);
    struct stat info {};
    if (::fstatat(next.get(), "", &info, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) {
      return errnoError(errno, "stat", where);
    }
    if (S_ISLNK(info.st_mode)) {
      if (++links > kMaxSymlinks) {
        return makeError(ErrorCode::kInvalidArgument, "too many symlinks resolving " + where);
      }
      std::string target(4096, '\0');
      ssize_t n = ::readlinkat(next.get(), "", target.data(), target.size());
      if (n < 0)
        return errnoError(errno, "read link", where);
      target.resize(static_cast<size_t>(n));
      if (!target.empty() && target.front() == '/')
        stack.clear();  // absolute: from the root
      auto parts = pathComponents(target);
      pending.insert(pending.begin(), parts.begin(), parts.end());
      continue;
    }
    if (!S_ISDIR(info.st_mode)) {
      return makeError(ErrorCode::kInvalidArgument,
                       "\"" + part + "\" in " + where + " is not a directory", ENOTDIR);
    }
    stack.push_back(std::move(next));
  }
  int fd = ::fcntl(current(), F_DUPFD_CLOEXEC, 0);
  if (fd < 0)
    return errnoError(errno, "dup", where);
  return UniqueFd(fd);
}

Status ConfinedRoot::removeAt(int parent, const std::string& name) {
  struct stat info {};
  if (::fstatat(parent, name.c_str(), &info, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT)
      return {};
    return errnoError(errno, "stat", name);
  }
  if (!S_ISDIR(info.st_mode)) {
    if (::unlinkat(parent, name.c_str(), 0) != 0 && errno != ENOENT) {
      return errnoError(errno, "remove", name);
    }
    return {};
  }
  UniqueFd dir(::openat(parent, name.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!dir.valid())
    return errnoError(errno, "open directory", name);
  ASSIGN_OR_RETURN(auto children, list(dir.get(), name));
  for (const auto& child : children) {
    RETURN_IF_ERROR(removeAt(dir.get(), child));
  }
  if (::unlinkat(parent, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
    return errnoError(errno, "remove directory", name);
  }
  return {};
}

}  // namespace pullagent
