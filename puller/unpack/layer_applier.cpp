#include "puller/unpack/layer_applier.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <unordered_set>
#include <vector>

#include "base/unique_handle.h"
#include "puller/oci/pipelined_sha256.h"

namespace pullagent::puller {
namespace {

using ArchiveReader = UniqueHandle<archive, archive_read_free>;

constexpr size_t kStreamBuffer = 1 << 20;  // 4 of them in flight: 4 MiB per unpacking layer
constexpr size_t kMaxXattrs = 128;
constexpr size_t kMaxXattrValue = 64 * 1024;
constexpr std::string_view kWhiteoutPrefix = ".wh.";
constexpr std::string_view kWhiteoutMetaPrefix = ".wh..wh.";
constexpr std::string_view kOpaqueMarker = ".wh..wh..opq";
constexpr const char* kOverlayOpaqueXattr = "trusted.overlay.opaque";

// What ends a standalone apply that met an entry needing the layers below; never reported as
// an error (applyLayer turns it into AppliedLayer::needs_lower_layers).
constexpr std::string_view kNeedsLowerPrefix = "needs the layers below: ";

bool isWhiteoutDevice(const struct stat& info) {
  return S_ISCHR(info.st_mode) && info.st_rdev == makedev(0, 0);
}

// errnoError, except that inside the tree being extracted a missing or forbidden path is the
// tree's (or the layer's) state: not "not found" or "permission denied" in the sense the exit
// codes give them (the registry's answer, the user's credentials).
Error sysError(int err, std::string_view what, std::string_view path) {
  Error error = errnoError(err, what, path);
  if (error.code == ErrorCode::kNotFound || error.code == ErrorCode::kPermissionDenied)
    error.code = ErrorCode::kInternal;
  return error;
}

// Feeds libarchive the decompressed tar and hashes every byte on the way: the diff_id covers
// the whole stream, also what libarchive never asks for (trailing bytes after the end marker).
// The hashing runs on its own thread (PipelinedSha256).
struct StreamFeeder {
  LayerStream* stream = nullptr;
  PipelinedSha256 hasher{4, kStreamBuffer};
  size_t total = 0;
  std::optional<Error> error;

  Result<size_t> next(const void** out) {
    char* buffer = hasher.acquire();
    ASSIGN_OR_RETURN(auto n, stream->read(buffer, hasher.bufferSize()));
    hasher.submit(n);
    total += n;
    *out = buffer;
    return n;
  }

  static la_ssize_t read(archive*, void* self, const void** out) noexcept {
    auto* feeder = static_cast<StreamFeeder*>(self);
    auto n = feeder->next(out);
    if (!n) {
      feeder->error = n.error();
      return -1;
    }
    return static_cast<la_ssize_t>(*n);
  }

  Status drain() {
    const void* ignored = nullptr;
    while (true) {
      ASSIGN_OR_RETURN(auto n, next(&ignored));
      if (n == 0)
        return {};
    }
  }
};

// libarchive's message, which is null when our own read callback failed.
std::string archiveError(archive* reader) {
  const char* text = archive_error_string(reader);
  return text != nullptr ? text : "read failed";
}

bool allowedXattr(std::string_view name, const ApplyOptions& options) {
  // overlayfs mounted with `userxattr` reads its metadata (whiteouts, opaque, redirects) from
  // user.overlay.*; a layer must not bring its own.
  if (options.overlay_lower && name.starts_with("user.overlay."))
    return false;
  if (name.starts_with("user."))
    return true;
  // File capabilities matter for images (ping, ...); only root may set them anyway.
  return options.privileged && name == "security.capability";
}

class Applier {
 public:
  Applier(const ConfinedRoot& root, const ApplyOptions& options) : root_(root), options_(options) {}

  Status apply(archive* reader, archive_entry* entry) {
    const char* raw_name = archive_entry_pathname(entry);
    if (raw_name == nullptr)
      return makeError(ErrorCode::kInvalidArgument, "entry without a name");
    ASSIGN_OR_RETURN(auto parts, ConfinedRoot::split(raw_name));
    if (parts.empty())
      return {};  // "./": the root itself keeps its own metadata
    const std::string path = ConfinedRoot::join(parts, parts.size());
    const std::string& base = parts.back();

    if (base.starts_with(kWhiteoutPrefix))
      return whiteout(parts, path);

    auto parent = parentOf(parts);
    if (!parent) {
      if (needs_lower_)
        return parent.error();
      return parent.error().context("entry " + path);
    }
    created_.insert(path);
    for (size_t i = 1; i < parts.size(); ++i)
      created_.insert(ConfinedRoot::join(parts, i));

    if (const char* link = archive_entry_hardlink(entry)) {
      return hardlink(*parent, base, path, link);
    }
    switch (archive_entry_filetype(entry)) {
      case AE_IFDIR:
        return directory(*parent, parts, entry);
      case AE_IFREG:
        return regular(*parent, base, path, reader, entry);
      case AE_IFLNK:
        return symlink(*parent, base, path, entry);
      case AE_IFCHR:
      case AE_IFBLK:
      case AE_IFIFO:
        return special(*parent, base, path, entry);
      case AE_IFSOCK:
        created_.erase(path);
        return {};  // sockets are runtime objects, never image content
      default:
        return makeError(ErrorCode::kInvalidArgument, "entry " + path + " has an unknown type");
    }
  }

  std::vector<std::string> opaqueDirs() const { return {opaque_.begin(), opaque_.end()}; }
  const std::optional<std::string>& needsLower() const { return needs_lower_; }

  // Opaque directories hide all lower content, wherever their marker stood in the layer; then
  // directory mtimes, which creating their children would otherwise have changed.
  Status finish() {
    forgetParent();
    for (const auto& dir : opaque_) {
      if (options_.standalone_upper) {
        RETURN_IF_ERROR(markOpaque(dir));
        continue;
      }
      auto parts = ConfinedRoot::split(dir);
      auto fd = root_.openDirectory(*parts, parts->size(), /*create=*/false);
      if (!fd)
        continue;  // the directory is gone (whited out or replaced): nothing to hide
      RETURN_IF_ERROR(hideLower(fd->get(), dir));
    }
    for (auto it = dir_times_.rbegin(); it != dir_times_.rend(); ++it) {
      auto parent = root_.openDirectory(it->parts, it->parts.size() - 1, false);
      if (!parent)
        continue;
      // Not through a path that may have become a symlink: AT_SYMLINK_NOFOLLOW.
      ::utimensat(parent->get(), it->parts.back().c_str(), it->times, AT_SYMLINK_NOFOLLOW);
    }
    return {};
  }

 private:
  struct DirTime {
    std::vector<std::string> parts;
    timespec times[2];
  };

  static void fillTimes(archive_entry* entry, timespec times[2]) {
    times[0].tv_sec =
        archive_entry_atime_is_set(entry) ? archive_entry_atime(entry) : archive_entry_mtime(entry);
    times[0].tv_nsec = archive_entry_atime_is_set(entry) ? archive_entry_atime_nsec(entry)
                                                         : archive_entry_mtime_nsec(entry);
    times[1].tv_sec = archive_entry_mtime(entry);
    times[1].tv_nsec = archive_entry_mtime_nsec(entry);
  }

  Status whiteout(const std::vector<std::string>& parts, const std::string& path) {
    const std::string& base = parts.back();
    const size_t depth = parts.size() - 1;
    const std::string dir = ConfinedRoot::join(parts, depth);
    if (base == kOpaqueMarker) {
      if (options_.standalone_upper) {
        ASSIGN_OR_RETURN(int ignored, parentOf(parts));  // the directory must be the layer's
        (void)ignored;
      }
      opaque_.insert(dir);
      return {};
    }
    if (base.starts_with(kWhiteoutMetaPrefix))
      return {};  // aufs metadata (.wh..wh.plnk ...)
    std::string target = base.substr(kWhiteoutPrefix.size());
    if (target.empty() || target == "." || target == "..") {
      return makeError(ErrorCode::kInvalidArgument, "invalid whiteout " + path);
    }
    const std::string hidden = dir.empty() ? target : dir + "/" + target;
    if (created_.count(hidden) != 0)
      return {};  // whiteouts hide lower layers only
    if (options_.standalone_upper) {
      ASSIGN_OR_RETURN(int parent, parentOf(parts));
      RETURN_IF_ERROR(clear(parent, target, false));
      if (::mknodat(parent, target.c_str(), S_IFCHR | 0, makedev(0, 0)) != 0)
        return sysError(errno, "create whiteout", path);
      return {};
    }
    auto parent = root_.openDirectory(parts, depth, /*create=*/false);
    if (!parent) {
      if (parent.error().code == ErrorCode::kNotFound)
        return {};
      return parent.error().context("whiteout " + path);
    }
    forgetParent();
    return ConfinedRoot::removeAt(parent->get(), target);
  }

  Status hideLower(int dir_fd, const std::string& dir) {
    ASSIGN_OR_RETURN(auto children, ConfinedRoot::list(dir_fd, dir));
    for (const auto& name : children) {
      const std::string child = dir.empty() ? name : dir + "/" + name;
      if (created_.count(child) == 0) {
        RETURN_IF_ERROR(ConfinedRoot::removeAt(dir_fd, name));
        continue;
      }
      // Created by this layer: keep it, but a directory may still hold lower content.
      UniqueFd sub(::openat(dir_fd, name.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (sub.valid()) {
        RETURN_IF_ERROR(hideLower(sub.get(), child));
      }
    }
    return {};
  }

  // Anything already at `name` that is not what we are about to create goes first.
  Status clear(int parent, const std::string& name, bool keep_directory) {
    struct stat info {};
    if (::fstatat(parent, name.c_str(), &info, AT_SYMLINK_NOFOLLOW) != 0)
      return {};
    if (keep_directory && S_ISDIR(info.st_mode))
      return {};
    forgetParent();  // a removal may change how any cached path resolves
    return ConfinedRoot::removeAt(parent, name);
  }

  // The directory an entry goes into. Consecutive entries mostly share it (a package's files),
  // so the last one is kept open; only a removal can change what a path resolves to (a
  // directory replaced by a symlink), and every removal drops it.
  Result<int> parentOf(const std::vector<std::string>& parts) {
    std::string key = ConfinedRoot::join(parts, parts.size() - 1);
    if (!cached_parent_fresh_ || key != cached_parent_path_) {
      if (options_.standalone_upper) {
        ASSIGN_OR_RETURN(auto own, ownDirectory(parts, parts.size() - 1));
        cached_parent_ = std::move(own);
        cached_parent_path_ = std::move(key);
        cached_parent_fresh_ = true;
        return cached_parent_.get();
      }
      ASSIGN_OR_RETURN(auto opened, root_.openDirectory(parts, parts.size() - 1, /*create=*/true));
      cached_parent_ = std::move(opened);
      cached_parent_path_ = std::move(key);
      cached_parent_fresh_ = true;
    }
    return cached_parent_.get();
  }
  // Ends a standalone apply: the entry's result depends on the layers below.
  Error needLower(const std::string& why) {
    needs_lower_ = why;
    return makeError(ErrorCode::kUnsupported, std::string(kNeedsLowerPrefix) + why);
  }

  // A directory this layer made itself, reached without following any symlink: in a
  // standalone apply, anything else (missing here, a symlink, a file) is the lower layers'.
  Result<UniqueFd> ownDirectory(const std::vector<std::string>& parts, size_t count) {
    UniqueFd current(::fcntl(root_.fd(), F_DUPFD_CLOEXEC, 0));
    if (!current.valid())
      return sysError(errno, "dup", "the root");
    for (size_t i = 0; i < count; ++i) {
      UniqueFd next(
          ::openat(current.get(), parts[i].c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!next.valid()) {
        if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP)
          return needLower("\"" + ConfinedRoot::join(parts, i + 1) +
                           "\" is not a directory of this layer");
        return sysError(errno, "open directory", ConfinedRoot::join(parts, i + 1));
      }
      current = std::move(next);
    }
    return current;
  }

  Status markOpaque(const std::string& dir) {
    ASSIGN_OR_RETURN(auto parts, ConfinedRoot::split(dir));
    ASSIGN_OR_RETURN(auto found, ownDirectory(parts, parts.size()));
    UniqueFd fd(::openat(found.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd.valid() || ::fsetxattr(fd.get(), kOverlayOpaqueXattr, "y", 1, 0) != 0)
      return sysError(errno, "mark opaque", dir);
    return {};
  }

  // Marks the cached fd stale without closing it: the entry being applied may still use it.
  void forgetParent() { cached_parent_fresh_ = false; }

  Status applyXattrs(int fd, archive_entry* entry, const std::string& path) {
    const char* name = nullptr;
    const void* value = nullptr;
    size_t size = 0;
    size_t count = 0;
    archive_entry_xattr_reset(entry);
    while (archive_entry_xattr_next(entry, &name, &value, &size) == ARCHIVE_OK) {
      if (++count > kMaxXattrs) {
        return makeError(ErrorCode::kInvalidArgument, "entry " + path + " has too many xattrs");
      }
      if (!allowedXattr(name, options_) || size > kMaxXattrValue) {
        spdlog::debug("{}: xattr {} not applied", path, name);
        continue;
      }
      if (::fsetxattr(fd, name, value, size, 0) != 0 && !warned_xattr_) {
        warned_xattr_ = true;
        spdlog::warn("{}: xattr {} not supported here: {}", path, name, std::strerror(errno));
      }
    }
    return {};
  }

  Status ownAndMode(int fd, archive_entry* entry, const std::string& path) {
    // Owner first: chown clears setuid/setgid, which the chmod after it restores.
    if (options_.privileged && ::fchown(fd, static_cast<uid_t>(archive_entry_uid(entry)),
                                        static_cast<gid_t>(archive_entry_gid(entry))) != 0) {
      return sysError(errno, "chown", path);
    }
    if (::fchmod(fd, archive_entry_perm(entry) & 07777) != 0) {
      return sysError(errno, "chmod", path);
    }
    return {};
  }

  Status directory(int parent, const std::vector<std::string>& parts, archive_entry* entry) {
    const std::string& base = parts.back();
    const std::string path = ConfinedRoot::join(parts, parts.size());
    if (options_.standalone_upper) {
      // The layer removed the lower path, then made a directory there: nothing below shows.
      struct stat info {};
      if (::fstatat(parent, base.c_str(), &info, AT_SYMLINK_NOFOLLOW) == 0 &&
          isWhiteoutDevice(info)) {
        opaque_.insert(path);
      }
    }
    RETURN_IF_ERROR(clear(parent, base, /*keep_directory=*/true));
    if (::mkdirat(parent, base.c_str(), 0700) != 0 && errno != EEXIST) {
      return sysError(errno, "mkdir", path);
    }
    UniqueFd fd(::openat(parent, base.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd.valid())
      return sysError(errno, "open directory", path);
    RETURN_IF_ERROR(ownAndMode(fd.get(), entry, path));
    RETURN_IF_ERROR(applyXattrs(fd.get(), entry, path));
    DirTime record{parts, {}};
    fillTimes(entry, record.times);
    dir_times_.push_back(std::move(record));
    return {};
  }

  Status regular(int parent, const std::string& base, const std::string& path, archive* reader,
                 archive_entry* entry) {
    RETURN_IF_ERROR(clear(parent, base, false));
    UniqueFd fd(
        ::openat(parent, base.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd.valid())
      return sysError(errno, "create", path);
    const void* block = nullptr;
    size_t size = 0;
    la_int64_t offset = 0;
    while (true) {
      int rc = archive_read_data_block(reader, &block, &size, &offset);
      if (rc == ARCHIVE_EOF)
        break;
      if (rc != ARCHIVE_OK) {
        return makeError(ErrorCode::kInvalidArgument,
                         "reading " + path + ": " + archiveError(reader));
      }
      const char* data = static_cast<const char*>(block);
      while (size > 0) {  // pwrite at the block's offset keeps sparse files sparse
        ssize_t n = ::pwrite(fd.get(), data, size, offset);
        if (n < 0) {
          if (errno == EINTR)
            continue;
          return sysError(errno, "write", path);
        }
        data += n;
        size -= static_cast<size_t>(n);
        offset += n;
      }
    }
    if (::ftruncate(fd.get(), archive_entry_size(entry)) != 0) {
      return sysError(errno, "truncate", path);
    }
    RETURN_IF_ERROR(ownAndMode(fd.get(), entry, path));
    RETURN_IF_ERROR(applyXattrs(fd.get(), entry, path));
    timespec times[2];
    fillTimes(entry, times);
    ::futimens(fd.get(), times);
    return {};
  }

  Status symlink(int parent, const std::string& base, const std::string& path,
                 archive_entry* entry) {
    const char* target = archive_entry_symlink(entry);
    if (target == nullptr)
      return makeError(ErrorCode::kInvalidArgument, path + ": empty symlink");
    RETURN_IF_ERROR(clear(parent, base, false));
    // The target is stored as is: it is only ever followed inside the root (ConfinedRoot) or by
    // the container, whose root this is.
    if (::symlinkat(target, parent, base.c_str()) != 0)
      return sysError(errno, "symlink", path);
    if (options_.privileged &&
        ::fchownat(parent, base.c_str(), static_cast<uid_t>(archive_entry_uid(entry)),
                   static_cast<gid_t>(archive_entry_gid(entry)), AT_SYMLINK_NOFOLLOW) != 0) {
      return sysError(errno, "chown", path);
    }
    timespec times[2];
    fillTimes(entry, times);
    ::utimensat(parent, base.c_str(), times, AT_SYMLINK_NOFOLLOW);
    return {};
  }

  Status hardlink(int parent, const std::string& base, const std::string& path,
                  const char* link_name) {
    auto target = ConfinedRoot::split(link_name);
    if (!target)
      return target.error().context("hardlink " + path);
    if (target->empty()) {
      return makeError(ErrorCode::kInvalidArgument, "hardlink " + path + " to the root");
    }
    auto target_parent = options_.standalone_upper
                             ? ownDirectory(*target, target->size() - 1)
                             : root_.openDirectory(*target, target->size() - 1, /*create=*/false);
    if (!target_parent) {
      if (needs_lower_)
        return target_parent.error();
      return target_parent.error().context("hardlink " + path);
    }
    struct stat info {};
    if (::fstatat(target_parent->get(), target->back().c_str(), &info, AT_SYMLINK_NOFOLLOW) != 0) {
      if (options_.standalone_upper)
        return needLower("hardlink " + path + " to " + link_name + ", not in this layer");
      return makeError(ErrorCode::kInvalidArgument,
                       "hardlink " + path + " to " + link_name + ", which does not exist");
    }
    if (options_.standalone_upper && isWhiteoutDevice(info)) {
      return makeError(ErrorCode::kInvalidArgument,
                       "hardlink " + path + " to " + link_name + ", which the layer removed");
    }
    if (S_ISDIR(info.st_mode)) {
      return makeError(ErrorCode::kInvalidArgument,
                       "hardlink " + path + " to directory " + link_name);
    }
    struct stat existing {};
    if (::fstatat(parent, base.c_str(), &existing, AT_SYMLINK_NOFOLLOW) == 0 &&
        existing.st_ino == info.st_ino && existing.st_dev == info.st_dev) {
      return {};  // already that file
    }
    RETURN_IF_ERROR(clear(parent, base, false));
    // flags 0: link the entry itself, never what a symlink target points to.
    if (::linkat(target_parent->get(), target->back().c_str(), parent, base.c_str(), 0) != 0) {
      return sysError(errno, "hardlink", path);
    }
    return {};
  }

  Status special(int parent, const std::string& base, const std::string& path,
                 archive_entry* entry) {
    if (options_.overlay_lower && archive_entry_filetype(entry) == AE_IFCHR &&
        archive_entry_rdevmajor(entry) == 0 && archive_entry_rdevminor(entry) == 0) {
      return makeError(ErrorCode::kInvalidArgument,
                       "entry " + path +
                           " is a 0:0 character device, which overlayfs reads as a whiteout "
                           "hiding the layers below: refused");
    }
    if (!options_.privileged) {
      created_.erase(path);
      if (!warned_special_) {
        warned_special_ = true;
        spdlog::warn("{}: device nodes and FIFOs need root; skipped", path);
      }
      return {};
    }
    RETURN_IF_ERROR(clear(parent, base, false));
    mode_t type = archive_entry_filetype(entry);
    dev_t device = makedev(static_cast<unsigned>(archive_entry_rdevmajor(entry)),
                           static_cast<unsigned>(archive_entry_rdevminor(entry)));
    if (::mknodat(parent, base.c_str(), type | 0600, device) != 0) {
      return sysError(errno, "mknod", path);
    }
    UniqueFd fd(::openat(parent, base.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
    if (!fd.valid())
      return sysError(errno, "open", path);
    // O_PATH fds need the /proc path for chmod/chown; through the fd, never the name.
    std::string proc = "/proc/self/fd/" + std::to_string(fd.get());
    if (::chown(proc.c_str(), static_cast<uid_t>(archive_entry_uid(entry)),
                static_cast<gid_t>(archive_entry_gid(entry))) != 0 ||
        ::chmod(proc.c_str(), archive_entry_perm(entry) & 07777) != 0) {
      return sysError(errno, "set owner/mode of", path);
    }
    timespec times[2];
    fillTimes(entry, times);
    ::utimensat(parent, base.c_str(), times, AT_SYMLINK_NOFOLLOW);
    return {};
  }

  const ConfinedRoot& root_;
  const ApplyOptions& options_;
  std::unordered_set<std::string> created_;  // paths this layer made: whiteouts spare them
  std::unordered_set<std::string> opaque_;
  std::vector<DirTime> dir_times_;
  std::optional<std::string> needs_lower_;
  UniqueFd cached_parent_;
  std::string cached_parent_path_;
  bool cached_parent_fresh_ = false;
  bool warned_xattr_ = false;
  bool warned_special_ = false;
};

}  // namespace

Result<AppliedLayer> applyLayer(const ConfinedRoot& root, LayerStream& stream,
                                const ApplyOptions& options) {
  StreamFeeder feeder;
  feeder.stream = &stream;
  ArchiveReader reader(archive_read_new());
  if (!reader)
    return makeError(ErrorCode::kResourceExhausted, "archive_read_new failed");
  archive_read_support_format_tar(reader.get());
  archive_read_support_filter_none(reader.get());
  if (archive_read_open(reader.get(), &feeder, nullptr, &StreamFeeder::read, nullptr) !=
      ARCHIVE_OK) {
    if (feeder.error)
      return *feeder.error;
    if (feeder.total == 0)
      return AppliedLayer{feeder.hasher.finish(), 0, 0, {}, {}};  // an empty blob: empty layer
    return makeError(ErrorCode::kInvalidArgument,
                     "layer is not a tar archive: " + archiveError(reader.get()));
  }

  ApplyOptions effective = options;
  effective.overlay_lower = options.overlay_lower || options.standalone_upper;
  Applier applier(root, effective);
  AppliedLayer result;
  while (true) {
    archive_entry* entry = nullptr;
    int rc = archive_read_next_header(reader.get(), &entry);
    if (rc == ARCHIVE_EOF)
      break;
    if (feeder.error)
      return *feeder.error;
    if (rc < ARCHIVE_WARN) {
      return makeError(ErrorCode::kInvalidArgument,
                       "layer tar is invalid: " + archiveError(reader.get()));
    }
    if (++result.entries > options.limits.max_entries) {
      return makeError(
          ErrorCode::kResourceExhausted,
          "layer has more than " + std::to_string(options.limits.max_entries) + " entries (limit)");
    }
    if (auto status = applier.apply(reader.get(), entry); !status) {
      if (feeder.error)
        return *feeder.error;
      if (applier.needsLower()) {
        result.needs_lower_layers = *applier.needsLower();
        return result;
      }
      return status.error();
    }
  }
  if (auto finished = applier.finish(); !finished) {
    if (applier.needsLower()) {  // an opaque directory the layer replaced after marking it
      result.needs_lower_layers = *applier.needsLower();
      return result;
    }
    return finished.error();
  }
  result.opaque_dirs = applier.opaqueDirs();
  RETURN_IF_ERROR(feeder.drain());
  result.diff_id = feeder.hasher.finish();
  result.uncompressed_bytes = stream.produced();
  return result;
}

std::string libarchiveVersion() {
  return archive_version_details();
}

}  // namespace pullagent::puller
