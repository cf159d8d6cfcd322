#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "base/unique_fd.h"

namespace pullagent {

// A directory tree that every operation stays inside. Paths are resolved component by
// component from a directory fd of the root with O_NOFOLLOW, symlinks expanded by hand as if
// the root were "/" (the semantics of openat2's RESOLVE_IN_ROOT): an absolute link target
// restarts at the root and ".." never climbs above it. Nothing is ever looked up by a path
// string outside this class, so no symlink, however planted, leads out.
class ConfinedRoot {
 public:
  static Result<ConfinedRoot> open(const std::filesystem::path& root);

  // An archive entry name as clean components: "./a//b/" -> {a, b}; leading "/" ignored (the
  // name is relative to the root whatever it says); ".." refused.
  static Result<std::vector<std::string>> split(std::string_view name);
  static std::string join(const std::vector<std::string>& components, size_t count);

  int fd() const { return root_.get(); }

  // Opens the directory named by `components` (an O_PATH fd), resolving symlinks inside the
  // root. With `create`, missing directories are made (0755); without, a missing one is
  // kNotFound. A component that is not a directory is kInvalidArgument.
  Result<UniqueFd> openDirectory(const std::vector<std::string>& components, size_t count,
                                 bool create) const;

  // Removes `name` inside the directory `parent`, recursively for a directory, never following
  // a symlink. A missing name is not an error.
  static Status removeAt(int parent, const std::string& name);

  // The names in directory `dir_fd` (any fd of a directory, O_PATH too), without "." and "..".
  static Result<std::vector<std::string>> list(int dir_fd, std::string_view what);

 private:
  explicit ConfinedRoot(UniqueFd root) : root_(std::move(root)) {}
  UniqueFd root_;
};

}  // namespace pullagent
