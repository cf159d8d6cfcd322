#define FUSE_USE_VERSION 312
#include "puller/lazy/lazy_mount.h"

#include <fcntl.h>
#include <fuse.h>
#include <spdlog/spdlog.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>
#include <new>
#include <vector>

#include "base/clock.h"

namespace pullagent::puller::estargz {
namespace {

// The FUSE control filesystem: a connection's abort file.
constexpr const char* kConnections = "/sys/fs/fuse/connections";

}  // namespace

// The FUSE callbacks: static, finding their mount in the request's context.
struct LazyMount::Served {
  static LazyMount& self() { return *static_cast<LazyMount*>(fuse_get_context()->private_data); }

  // The directory above the layer's own root when the layer is a subdirectory of the mount.
  static constexpr size_t kTop = std::numeric_limits<size_t>::max();

  // The tree node at a path of the mount, or kTop.
  static std::optional<size_t> node(const char* path) {
    LazyMount& mount = self();
    if (mount.options_.subdir.empty())
      return mount.tree_.find(path);
    const std::string_view at(path);
    const std::string prefix = "/" + mount.options_.subdir;
    if (at == "/")
      return kTop;
    if (at == prefix)
      return mount.tree_.find("/");
    if (at.starts_with(prefix) && at.size() > prefix.size() && at[prefix.size()] == '/')
      return mount.tree_.find(at.substr(prefix.size()));
    return std::nullopt;
  }

  static struct stat topAttributes() {
    struct stat st {};
    st.st_mode = S_IFDIR | 0755;
    st.st_nlink = 3;
    st.st_ino = self().tree_.size() + 1;
    return st;
  }

  static void* init(fuse_conn_info* conn, fuse_config* config) {
    config->use_ino = 1;
    // Opening a file needs no round trip: the mount is read-only (the kernel refuses writes)
    // and reads find the file by path. A walk over many small files goes faster by a third.
    if ((conn->capable & FUSE_CAP_NO_OPEN_SUPPORT) != 0) {
      conn->want |= FUSE_CAP_NO_OPEN_SUPPORT;
      self().no_open_ = true;
    }
    // The layer never changes: the kernel may cache names, attributes and pages for good.
    config->kernel_cache = 1;
    config->entry_timeout = 86400;
    config->attr_timeout = 86400;
    config->negative_timeout = 86400;
    return fuse_get_context()->private_data;
  }

  static int getattr(const char* path, struct stat* st, fuse_file_info* /*fi*/) {
    auto index = node(path);
    if (!index)
      return -ENOENT;
    *st = *index == kTop ? topAttributes() : self().tree_.attributes(*index);
    return 0;
  }

  static int readlink(const char* path, char* buffer, size_t size) {
    auto index = node(path);
    if (!index)
      return -ENOENT;
    if (*index == kTop)
      return -EINVAL;
    const auto& found = self().tree_.node(*index);
    if (found.type != S_IFLNK || found.entry == nullptr || size == 0)
      return -EINVAL;
    const std::string& target = found.entry->link_target;
    const size_t length = std::min(size - 1, target.size());
    std::memcpy(buffer, target.data(), length);
    buffer[length] = '\0';
    return 0;
  }

  static int open(const char* path, fuse_file_info* fi) {
    if (self().no_open_)
      return -ENOSYS;  // the kernel's cue to open without asking, from now on
    auto index = node(path);
    if (!index)
      return -ENOENT;
    if ((fi->flags & O_ACCMODE) != O_RDONLY)
      return -EROFS;
    if (*index == kTop || self().tree_.node(*index).type != S_IFREG)
      return -EINVAL;
    fi->fh = *index;
    fi->keep_cache = 1;
    fi->noflush = 1;  // nothing to flush: a close costs no round trip
    return 0;
  }

  static int read(const char* path, char* buffer, size_t size, off_t offset, fuse_file_info* fi) {
    LazyMount& mount = self();
    // Opened without a round trip, a file carries no handle: its path names it.
    std::optional<size_t> index = static_cast<size_t>(fi->fh);
    if (fi->fh == 0)
      index = node(path);
    if (!index || *index == kTop)
      return -EINVAL;
    const auto& found = mount.tree_.node(*index);
    if (found.type != S_IFREG || found.entry == nullptr || offset < 0)
      return -EINVAL;
    ++mount.reads_;
    static const SystemClock clock;
    const Context ctx{&clock, mount.stop_.get_token(), clock.now() + mount.options_.read_timeout};
    const auto started = std::chrono::steady_clock::now();
    auto bytes = mount.layer_.read(*found.entry, static_cast<uint64_t>(offset), size, ctx);
    mount.countRead(std::chrono::steady_clock::now() - started);
    if (!bytes) {
      ++mount.read_errors_;
      spdlog::warn("{}: reading {} ({} bytes at {}) failed: {}", mount.options_.name, path, size,
                   offset, bytes.error().describe());
      return -EIO;
    }
    std::memcpy(buffer, bytes->data(), bytes->size());
    return static_cast<int>(bytes->size());
  }

  static int readdir(const char* path, void* buffer, fuse_fill_dir_t fill, off_t /*offset*/,
                     fuse_file_info* /*fi*/, fuse_readdir_flags flags) {
    // With readdirplus, each name comes with its attributes: walking a directory of many files
    // costs no lookup per file.
    const auto plus =
        static_cast<fuse_fill_dir_flags>((flags & FUSE_READDIR_PLUS) != 0 ? FUSE_FILL_DIR_PLUS : 0);
    auto index = node(path);
    if (!index)
      return -ENOENT;
    const auto& tree = self().tree_;
    fill(buffer, ".", nullptr, 0, static_cast<fuse_fill_dir_flags>(0));
    fill(buffer, "..", nullptr, 0, static_cast<fuse_fill_dir_flags>(0));
    if (*index == kTop) {
      struct stat st = tree.attributes(0);
      fill(buffer, self().options_.subdir.c_str(), &st, 0, plus);
      return 0;
    }
    if (tree.node(*index).type != S_IFDIR)
      return -ENOTDIR;
    for (const auto& [name, child] : tree.node(*index).children) {
      struct stat st = tree.attributes(child);
      if (fill(buffer, name.c_str(), &st, 0, plus) != 0)
        break;
    }
    return 0;
  }

  static int getxattr(const char* path, const char* name, char* value, size_t size) {
    auto index = node(path);
    if (!index)
      return -ENOENT;
    if (*index == kTop)
      return -ENODATA;
    const auto xattrs = self().tree_.xattrs(*index);
    auto it = xattrs.find(name);
    if (it == xattrs.end())
      return -ENODATA;
    if (size == 0)
      return static_cast<int>(it->second.size());
    if (size < it->second.size())
      return -ERANGE;
    std::memcpy(value, it->second.data(), it->second.size());
    return static_cast<int>(it->second.size());
  }

  static int listxattr(const char* path, char* list, size_t size) {
    auto index = node(path);
    if (!index)
      return -ENOENT;
    std::string names;
    if (*index != kTop) {
      for (const auto& [name, value] : self().tree_.xattrs(*index))
        names += name + '\0';
    }
    if (size == 0)
      return static_cast<int>(names.size());
    if (size < names.size())
      return -ERANGE;
    std::memcpy(list, names.data(), names.size());
    return static_cast<int>(names.size());
  }

  // No exception may unwind through libfuse's C frames (it would end the process, and every
  // mount with it): a callback that throws answers ENOMEM or EIO.
  template <typename Call>
  static int guarded(Call&& call) {
    try {
      return call();
    } catch (const std::bad_alloc&) {
      return -ENOMEM;
    } catch (...) {
      return -EIO;
    }
  }

  static fuse_operations operations() {
    fuse_operations ops{};
    ops.init = init;
    ops.getattr = [](const char* path, struct stat* st, fuse_file_info* fi) {
      return guarded([&] { return getattr(path, st, fi); });
    };
    ops.readlink = [](const char* path, char* buffer, size_t size) {
      return guarded([&] { return readlink(path, buffer, size); });
    };
    ops.open = [](const char* path, fuse_file_info* fi) {
      return guarded([&] { return open(path, fi); });
    };
    ops.read = [](const char* path, char* buffer, size_t size, off_t offset, fuse_file_info* fi) {
      return guarded([&] { return read(path, buffer, size, offset, fi); });
    };
    ops.readdir = [](const char* path, void* buffer, fuse_fill_dir_t fill, off_t offset,
                     fuse_file_info* fi, fuse_readdir_flags flags) {
      return guarded([&] { return readdir(path, buffer, fill, offset, fi, flags); });
    };
    ops.getxattr = [](const char* path, const char* name, char* value, size_t size) {
      return guarded([&] { return getxattr(path, name, value, size); });
    };
    ops.listxattr = [](const char* path, char* list, size_t size) {
      return guarded([&] { return listxattr(path, list, size); });
    };
    return ops;
  }
};

void LazyMount::countRead(std::chrono::steady_clock::duration took) {
  const double seconds = std::chrono::duration<double>(took).count();
  size_t bucket = 0;
  while (bucket < kReadSecondsBounds.size() && seconds > kReadSecondsBounds[bucket])
    ++bucket;
  ++read_seconds_[bucket];
  read_micros_ += std::chrono::duration_cast<std::chrono::microseconds>(took).count();
}

LazyMount::Stats LazyMount::stats() const {
  Stats stats{reads_.load(), read_errors_.load(), {}, 0};
  for (size_t i = 0; i < read_seconds_.size(); ++i)
    stats.read_seconds[i] = read_seconds_[i].load();
  stats.read_seconds_sum = static_cast<double>(read_micros_.load()) / 1e6;
  return stats;
}

LazyMount::LazyMount(LazyLayer& layer, std::filesystem::path mountpoint, Options options)
    : layer_(layer),
      tree_(layer.toc()),
      mountpoint_(std::move(mountpoint)),
      options_(std::move(options)) {}

Result<std::unique_ptr<LazyMount>> LazyMount::mount(LazyLayer& layer,
                                                    const std::filesystem::path& mountpoint,
                                                    Options options) {
  std::unique_ptr<LazyMount> mounted(new LazyMount(layer, mountpoint, std::move(options)));
  // Read-only; every user may read (the runtime's overlay, the container), the kernel checks
  // the layer's own modes.
  std::vector<std::string> words = {
      "pullagent", "-o", "ro,allow_other,default_permissions,fsname=pullagent,subtype=estargz"};
  std::vector<char*> argv;
  for (auto& word : words)
    argv.push_back(word.data());
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
  const fuse_operations ops = Served::operations();
  mounted->fuse_ = fuse_new(&args, &ops, sizeof(ops), mounted.get());
  fuse_opt_free_args(&args);
  if (mounted->fuse_ == nullptr)
    return makeError(ErrorCode::kInternal, "fuse_new failed for " + mountpoint.string());
  if (fuse_mount(mounted->fuse_, mountpoint.c_str()) != 0) {
    fuse_destroy(mounted->fuse_);
    mounted->fuse_ = nullptr;
    return makeError(ErrorCode::kUnavailable,
                     "FUSE mount at " + mountpoint.string() + " failed (needs root and /dev/fuse)");
  }
  LazyMount* self = mounted.get();
  mounted->loop_ = std::thread([self] {
    fuse_loop_config* config = fuse_loop_cfg_create();
    fuse_loop_cfg_set_max_threads(config, 8);
    fuse_loop_mt(self->fuse_, config);
    fuse_loop_cfg_destroy(config);
    self->loop_done_ = true;
  });
  // The connection's number under /sys/fs/fuse/connections: the mount's device minor (asked
  // once the loop serves, which answers the stat).
  // Without it, a mount something still holds at unmount could never be ended: no mount then.
  struct stat mounted_at {};
  if (::stat(mountpoint.c_str(), &mounted_at) == 0) {
    const auto abort =
        "/sys/fs/fuse/connections/" + std::to_string(minor(mounted_at.st_dev)) + "/abort";
    mounted->abort_fd_ = ::open(abort.c_str(), O_WRONLY | O_CLOEXEC);
    if (mounted->abort_fd_ < 0 && errno == ENOENT) {
      // fusectl mounted now; another mount may have mounted it meanwhile (EBUSY): open again
      // either way.
      (void)::mount("fusectl", kConnections, "fusectl", 0, nullptr);
      mounted->abort_fd_ = ::open(abort.c_str(), O_WRONLY | O_CLOEXEC);
    }
  }
  if (mounted->abort_fd_ < 0) {
    return makeError(ErrorCode::kUnavailable,
                     "FUSE mount at " + mountpoint.string() +
                         ": its connection cannot be found in " + kConnections +
                         " (fusectl), so it could not be ended for sure; unmounted");
  }
  return mounted;
}

std::filesystem::path LazyMount::layerRoot() const {
  return options_.subdir.empty() ? mountpoint_ : mountpoint_ / options_.subdir;
}

void LazyMount::detach() {
  // The loop goes on serving: it ends by itself once the kernel lets go of the connection.
  if (fuse_ != nullptr)
    ::umount2(mountpoint_.c_str(), MNT_DETACH);
}

void LazyMount::beginUnmount() {
  if (fuse_ == nullptr)
    return;
  stop_.request_stop();  // reads waiting for the network give up
  fuse_exit(fuse_);
  ::umount2(mountpoint_.c_str(), MNT_DETACH);
}

LazyMount::~LazyMount() {
  if (fuse_ == nullptr)
    return;
  stop_.request_stop();  // reads waiting for the network give up
  fuse_exit(fuse_);
  // The kernel ends the connection when the mount goes (its readers of /dev/fuse get ENODEV
  // and the loop returns); should anything still hold the mount, the connection is aborted.
  // Only then is libfuse's file descriptor closed (fuse_unmount): closing it under the loop's
  // threads, which read it, would race with them.
  ::umount2(mountpoint_.c_str(), MNT_DETACH);
  // The abort file was opened at mount time: once this connection is gone, writing to it does
  // nothing, so another mount that took its number later is never touched.
  for (auto waited = std::chrono::milliseconds(0); !loop_done_ && waited < unmount_wait_;
       waited += std::chrono::milliseconds(20))
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  if (!loop_done_ && abort_fd_ >= 0)
    (void)::write(abort_fd_, "1", 1);
  if (loop_.joinable())
    loop_.join();
  // The loop may have ended on a request after fuse_exit with the connection still alive: end
  // it, so that libfuse's unmount below finds it gone instead of unmounting by name whatever is
  // mounted at the path now.
  if (abort_fd_ >= 0) {
    (void)::write(abort_fd_, "1", 1);
    ::close(abort_fd_);
  }
  fuse_unmount(fuse_);
  fuse_destroy(fuse_);
}

}  // namespace pullagent::puller::estargz
