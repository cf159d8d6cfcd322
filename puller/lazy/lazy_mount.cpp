#define FUSE_USE_VERSION 312
#include "puller/lazy/lazy_mount.h"

#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <linux/fuse.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>

#include "base/clock.h"
#include "base/confined_root.h"

namespace pullagent::puller::estargz {
namespace {

// The FUSE control filesystem: a connection's abort file.
constexpr const char* kConnections = "/sys/fs/fuse/connections";
// The layer never changes: the kernel may keep names (found or not) and attributes for good.
constexpr double kForGood = 86400;
// An inode number readdir(3) shows for a directory it cannot name (libfuse's FUSE_UNKNOWN_INO).
constexpr ino_t kUnknownIno = 0xffffffff;
// The kernel's readahead for the mount (its bdi's read_ahead_kb; 128 KiB unless set): a big
// file read through costs a READ round trip per window.
constexpr const char* kReadAheadKiB = "1024";

}  // namespace

// The low-level callbacks: static, finding their mount in the request's user data. Node ids are
// the tree's indexes (fixed by the TOC, the same in every process that serves the layer):
// FUSE_ROOT_ID is the mount's root, index i is i + 2.
struct LazyMount::Served {
  static LazyMount& self(fuse_req_t req) {
    return *static_cast<LazyMount*>(fuse_req_userdata(req));
  }

  // The directory above the layer's own root when the layer is a subdirectory of the mount.
  static constexpr size_t kTop = std::numeric_limits<size_t>::max();

  static std::optional<size_t> node(const LazyMount& mount, fuse_ino_t ino) {
    if (ino == FUSE_ROOT_ID)
      return mount.options_.subdir.empty() ? 0 : kTop;
    if (ino < 2 || ino - 2 >= mount.tree_.size())
      return std::nullopt;
    return static_cast<size_t>(ino - 2);
  }
  static fuse_ino_t ino(const LazyMount& mount, size_t index) {
    if (index == kTop || (index == 0 && mount.options_.subdir.empty()))
      return FUSE_ROOT_ID;
    return static_cast<fuse_ino_t>(index + 2);
  }

  static struct stat attributes(const LazyMount& mount, size_t index) {
    struct stat st {};
    if (index == kTop) {
      st.st_mode = S_IFDIR | 0755;
      st.st_nlink = 3;
    } else {
      st = mount.tree_.attributes(index);
    }
    st.st_ino = ino(mount, index);
    return st;
  }

  static fuse_entry_param entry(const LazyMount& mount, size_t index) {
    fuse_entry_param found{};
    found.ino = ino(mount, index);
    found.attr = attributes(mount, index);
    found.attr_timeout = kForGood;
    found.entry_timeout = kForGood;
    return found;
  }

  // The children of a directory node as a listing reads them: ".", "..", then by name.
  static std::optional<size_t> child(const LazyMount& mount, size_t parent, std::string_view name) {
    if (parent == kTop)
      return name == mount.options_.subdir ? std::optional<size_t>(0) : std::nullopt;
    const auto& children = mount.tree_.node(parent).children;
    auto it = children.find(name);
    if (it == children.end())
      return std::nullopt;
    return it->second;
  }

  static void init(void* userdata, fuse_conn_info* conn) {
    auto& mount = *static_cast<LazyMount*>(userdata);
    // Opening a file needs no round trip: the mount is read-only (the kernel refuses writes)
    // and reads name the file by its node. A walk over many small files goes faster by a third.
    if ((conn->capable & FUSE_CAP_NO_OPEN_SUPPORT) != 0) {
      conn->want |= FUSE_CAP_NO_OPEN_SUPPORT;
      mount.no_open_ = true;
    }
    // Every listing with its names' attributes and nodes (readdirplus), not only a directory's
    // first page: the kernel then needs no LOOKUP for a name it listed, and has the inode a
    // push of its bytes needs (PagePusher).
    conn->want &= ~static_cast<unsigned>(FUSE_CAP_READDIRPLUS_AUTO);
    // Directories too (listings name the node, not an open handle); the kernel then keeps each
    // listing in its page cache, as the layer never changes.
    if ((conn->capable & FUSE_CAP_NO_OPENDIR_SUPPORT) != 0) {
      conn->want |= FUSE_CAP_NO_OPENDIR_SUPPORT;
      mount.no_opendir_ = true;
    }
  }

  // The directory node `at` names, or nullopt once the request is answered with the error.
  static std::optional<size_t> directory(fuse_req_t req, fuse_ino_t at) {
    const LazyMount& mount = self(req);
    auto index = node(mount, at);
    if (!index) {
      fuse_reply_err(req, ENOENT);
      return std::nullopt;
    }
    if (*index != kTop && mount.tree_.node(*index).type != S_IFDIR) {
      fuse_reply_err(req, ENOTDIR);
      return std::nullopt;
    }
    return index;
  }

  static void lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
    const LazyMount& mount = self(req);
    auto dir = directory(req, parent);
    if (!dir)
      return;
    auto found = child(mount, *dir, name);
    if (!found) {
      // A name that is not there stays not there: node id 0 is a lookup the kernel remembers.
      fuse_entry_param none{};
      none.entry_timeout = kForGood;
      fuse_reply_entry(req, &none);
      return;
    }
    const fuse_entry_param param = entry(mount, *found);
    fuse_reply_entry(req, &param);
  }

  static void getattr(fuse_req_t req, fuse_ino_t at, fuse_file_info* /*fi*/) {
    const LazyMount& mount = self(req);
    auto index = node(mount, at);
    if (!index) {
      fuse_reply_err(req, ENOENT);
      return;
    }
    const struct stat st = attributes(mount, *index);
    fuse_reply_attr(req, &st, kForGood);
  }

  static void readlink(fuse_req_t req, fuse_ino_t at) {
    const LazyMount& mount = self(req);
    auto index = node(mount, at);
    if (!index || *index == kTop || mount.tree_.node(*index).type != S_IFLNK ||
        mount.tree_.node(*index).entry == nullptr) {
      fuse_reply_err(req, EINVAL);
      return;
    }
    fuse_reply_readlink(req, mount.tree_.node(*index).entry->link_target.c_str());
  }

  static void open(fuse_req_t req, fuse_ino_t at, fuse_file_info* fi) {
    const LazyMount& mount = self(req);
    if (mount.no_open_) {
      fuse_reply_err(req, ENOSYS);  // the kernel's cue to open without asking, from now on
      return;
    }
    auto index = node(mount, at);
    if (!index) {
      fuse_reply_err(req, ENOENT);
      return;
    }
    if ((fi->flags & O_ACCMODE) != O_RDONLY) {
      fuse_reply_err(req, EROFS);
      return;
    }
    if (*index == kTop || mount.tree_.node(*index).type != S_IFREG) {
      fuse_reply_err(req, EINVAL);
      return;
    }
    fi->keep_cache = 1;
    fi->noflush = 1;  // nothing to flush: a close costs no round trip
    fuse_reply_open(req, fi);
  }

  static void read(fuse_req_t req, fuse_ino_t at, size_t size, off_t offset,
                   fuse_file_info* /*fi*/) {
    LazyMount& mount = self(req);
    auto index = node(mount, at);
    const LayerTree::Node* found = index && *index != kTop ? &mount.tree_.node(*index) : nullptr;
    if (found == nullptr || found->type != S_IFREG || found->entry == nullptr || offset < 0) {
      fuse_reply_err(req, EINVAL);
      return;
    }
    ++mount.reads_;
    mount.pusher_.read(*index);
    static const SystemClock clock;
    const Context ctx{&clock, mount.stop_.get_token(), clock.now() + mount.options_.read_timeout};
    const auto started = std::chrono::steady_clock::now();
    auto bytes = mount.layer_.read(*found->entry, static_cast<uint64_t>(offset), size, ctx);
    mount.countRead(std::chrono::steady_clock::now() - started);
    if (!bytes) {
      ++mount.read_errors_;
      spdlog::warn("{}: reading /{} ({} bytes at {}) failed: {}", mount.options_.name,
                   ConfinedRoot::join(found->entry->path, found->entry->path.size()), size, offset,
                   bytes.error().describe());
      fuse_reply_err(req, EIO);
      return;
    }
    fuse_reply_buf(req, bytes->data(), bytes->size());
  }

  // A directory's listing from `offset` (0, or what an earlier call gave its last entry), as
  // many entries as fit in `size` bytes. With readdirplus each name comes with its attributes
  // and node: walking a directory of many files costs no lookup per file.
  static void list(fuse_req_t req, fuse_ino_t at, size_t size, off_t offset, bool plus) {
    LazyMount& mount = self(req);
    auto index = directory(req, at);
    if (!index)
      return;
    std::vector<std::pair<std::string_view, std::optional<size_t>>> names = {{".", std::nullopt},
                                                                             {"..", std::nullopt}};
    if (*index == kTop) {
      names.emplace_back(mount.options_.subdir, 0);
    } else {
      for (const auto& [name, child_index] : mount.tree_.node(*index).children)
        names.emplace_back(name, child_index);
    }
    std::string buffer(size, '\0');
    size_t used = 0;
    std::vector<size_t> shown;  // nodes the kernel makes inodes for (readdirplus)
    for (size_t i = offset < 0 ? names.size() : static_cast<size_t>(offset); i < names.size();
         ++i) {
      const std::string name(names[i].first);
      const auto next = static_cast<off_t>(i + 1);
      size_t needed = 0;
      // "." and ".." carry no node (the kernel knows them), but an inode number: readdir(3)
      // skips an entry whose number is 0. The parent's is not kept: "unknown", as libfuse's
      // high-level API says.
      struct stat st {};
      st.st_mode = S_IFDIR;
      st.st_ino = i == 0 ? at : kUnknownIno;
      if (names[i].second)
        st = attributes(mount, *names[i].second);
      if (plus) {
        fuse_entry_param param{};
        if (names[i].second)
          param = entry(mount, *names[i].second);
        else
          param.attr = st;
        needed = fuse_add_direntry_plus(req, buffer.data() + used, size - used, name.c_str(),
                                        &param, next);
      } else {
        needed = fuse_add_direntry(req, buffer.data() + used, size - used, name.c_str(), &st, next);
      }
      if (needed > size - used)
        break;
      used += needed;
      if (plus && names[i].second)
        shown.push_back(*names[i].second);
    }
    fuse_reply_buf(req, buffer.data(), used);
    if (!shown.empty())
      mount.pusher_.listed(shown);
  }

  static void getxattr(fuse_req_t req, fuse_ino_t at, const char* name, size_t size) {
    LazyMount& mount = self(req);
    ++mount.xattr_requests_;
    if (!mount.tree_.anyXattrs()) {
      // The kernel's cue to answer "not supported" itself from now on. Overlayfs asks every
      // regular file of a lower layer for trusted.overlay.metacopy at lookup, and FUSE keeps no
      // xattr cache: without this, reading a layer of small files costs twice the round trips.
      // Listing stays asked (and answers none): copy-up and archivers list, rarely.
      fuse_reply_err(req, ENOSYS);
      return;
    }
    auto index = node(mount, at);
    if (!index) {
      fuse_reply_err(req, ENOENT);
      return;
    }
    if (*index == kTop) {
      fuse_reply_err(req, ENODATA);
      return;
    }
    const auto xattrs = mount.tree_.xattrs(*index);
    auto it = xattrs.find(name);
    if (it == xattrs.end()) {
      fuse_reply_err(req, ENODATA);
      return;
    }
    replyBytes(req, it->second, size);
  }

  static void listxattr(fuse_req_t req, fuse_ino_t at, size_t size) {
    const LazyMount& mount = self(req);
    auto index = node(mount, at);
    if (!index) {
      fuse_reply_err(req, ENOENT);
      return;
    }
    std::string names;
    if (*index != kTop) {
      for (const auto& [name, value] : mount.tree_.xattrs(*index))
        names += name + '\0';
    }
    replyBytes(req, names, size);
  }

  // An xattr answer: its size when asked with 0, else the bytes if they fit.
  static void replyBytes(fuse_req_t req, const std::string& bytes, size_t size) {
    if (size == 0)
      fuse_reply_xattr(req, bytes.size());
    else if (size < bytes.size())
      fuse_reply_err(req, ERANGE);
    else
      fuse_reply_buf(req, bytes.data(), bytes.size());
  }

  // No exception may unwind through libfuse's C frames (it would end the process, and every
  // mount with it): a callback that throws answers ENOMEM or EIO.
  template <typename Call>
  static void guarded(fuse_req_t req, Call&& call) {
    try {
      call();
    } catch (const std::bad_alloc&) {
      fuse_reply_err(req, ENOMEM);
    } catch (...) {
      fuse_reply_err(req, EIO);
    }
  }

  static void forgotten(LazyMount& mount, fuse_ino_t at) {
    if (auto index = node(mount, at); index && *index != kTop)
      mount.pusher_.forgotten(*index);
  }

  static fuse_lowlevel_ops operations() {
    fuse_lowlevel_ops ops{};
    ops.init = init;
    ops.lookup = [](fuse_req_t req, fuse_ino_t parent, const char* name) {
      guarded(req, [&] { lookup(req, parent, name); });
    };
    ops.getattr = [](fuse_req_t req, fuse_ino_t at, fuse_file_info* fi) {
      guarded(req, [&] { getattr(req, at, fi); });
    };
    ops.readlink = [](fuse_req_t req, fuse_ino_t at) { guarded(req, [&] { readlink(req, at); }); };
    ops.open = [](fuse_req_t req, fuse_ino_t at, fuse_file_info* fi) {
      guarded(req, [&] { open(req, at, fi); });
    };
    ops.read = [](fuse_req_t req, fuse_ino_t at, size_t size, off_t offset, fuse_file_info* fi) {
      guarded(req, [&] { read(req, at, size, offset, fi); });
    };
    ops.opendir = [](fuse_req_t req, fuse_ino_t /*at*/, fuse_file_info* fi) {
      if (self(req).no_opendir_)
        fuse_reply_err(req, ENOSYS);  // the kernel's cue to list without opening, from now on
      else
        fuse_reply_open(req, fi);
    };
    ops.readdir = [](fuse_req_t req, fuse_ino_t at, size_t size, off_t offset,
                     fuse_file_info* /*fi*/) {
      guarded(req, [&] { list(req, at, size, offset, false); });
    };
    ops.readdirplus = [](fuse_req_t req, fuse_ino_t at, size_t size, off_t offset,
                         fuse_file_info* /*fi*/) {
      guarded(req, [&] { list(req, at, size, offset, true); });
    };
    // The kernel let go of inodes, and their pages: a later listing pushes them again.
    ops.forget = [](fuse_req_t req, fuse_ino_t at, uint64_t /*lookups*/) {
      forgotten(self(req), at);
      fuse_reply_none(req);
    };
    ops.forget_multi = [](fuse_req_t req, size_t count, fuse_forget_data* forgets) {
      for (size_t i = 0; i < count; ++i)
        forgotten(self(req), forgets[i].ino);
      fuse_reply_none(req);
    };
    ops.getxattr = [](fuse_req_t req, fuse_ino_t at, const char* name, size_t size) {
      guarded(req, [&] { getxattr(req, at, name, size); });
    };
    ops.listxattr = [](fuse_req_t req, fuse_ino_t at, size_t size) {
      guarded(req, [&] { listxattr(req, at, size); });
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
  Stats stats;
  stats.reads = reads_.load();
  stats.read_errors = read_errors_.load();
  for (size_t i = 0; i < read_seconds_.size(); ++i)
    stats.read_seconds[i] = read_seconds_[i].load();
  stats.read_seconds_sum = static_cast<double>(read_micros_.load()) / 1e6;
  stats.xattr_requests = xattr_requests_.load();
  stats.pushed = pusher_.stats();
  return stats;
}

LazyMount::LazyMount(LazyLayer& layer, std::filesystem::path mountpoint, Options options)
    : layer_(layer),
      tree_(layer.toc()),
      mountpoint_(std::move(mountpoint)),
      options_(std::move(options)),
      pusher_(
          layer, tree_, [this](size_t index) { return Served::ino(*this, index); }, options_.name) {
}

Result<std::unique_ptr<LazyMount>> LazyMount::mount(LazyLayer& layer,
                                                    const std::filesystem::path& mountpoint,
                                                    Options options) {
  std::unique_ptr<LazyMount> mounted(new LazyMount(layer, mountpoint, std::move(options)));
  mounted->device_.reset(::open("/dev/fuse", O_RDWR | O_CLOEXEC));
  if (!mounted->device_.valid()) {
    return makeError(ErrorCode::kUnavailable,
                     "FUSE mount at " + mountpoint.string() +
                         ": cannot open /dev/fuse: " + std::strerror(errno));
  }
  // Read-only; every user may read (the runtime's overlay, the container), the kernel checks
  // the layer's own modes.
  const std::string data = "fd=" + std::to_string(mounted->device_.get()) +
                           ",rootmode=40000,user_id=0,group_id=0,allow_other,default_permissions";
  if (::mount("pullagent", mountpoint.c_str(), "fuse.estargz", MS_RDONLY | MS_NOSUID | MS_NODEV,
              data.c_str()) != 0) {
    return makeError(ErrorCode::kUnavailable,
                     "FUSE mount at " + mountpoint.string() +
                         " failed (needs root and /dev/fuse): " + std::strerror(errno));
  }
  mounted->mounted_ = true;  // from here on, a failure unmounts (the destructor)
  if (auto served = mounted->serve(""); !served.ok())
    return served.error();
  // The connection's number under /sys/fs/fuse/connections: the mount's device minor (asked
  // once the servers serve, which answers the stat after INIT). Without it, a mount something
  // still holds at unmount could never be ended: no mount then.
  RETURN_IF_ERROR(mounted->openAbortFile());
  mounted->setReadAhead();
  std::lock_guard lock(mounted->init_mutex_);
  if (mounted->init_request_.empty()) {
    return makeError(ErrorCode::kInternal,
                     "FUSE mount at " + mountpoint.string() + ": the kernel's INIT was not seen");
  }
  return mounted;
}

Result<std::unique_ptr<LazyMount>> LazyMount::adopt(LazyLayer& layer,
                                                    const std::filesystem::path& mountpoint,
                                                    Options options, Handover handover) {
  std::unique_ptr<LazyMount> adopted(new LazyMount(layer, mountpoint, std::move(options)));
  const std::string where = "adopting the FUSE mount at " + mountpoint.string();
  adopted->device_ = std::move(handover.device);
  adopted->connection_ = handover.connection;
  adopted->mounted_ = true;
  // Not unmounted should this fail: the mount is its keeper's to retire.
  adopted->released_ = true;
  const std::string& init = handover.init_request;
  fuse_in_header header{};
  if (init.size() >= sizeof header)
    std::memcpy(&header, init.data(), sizeof header);
  // libfuse reads the INIT's arguments after the header (flags2 too when flags say so): all of
  // what it reads must be there.
  fuse_init_in arguments{};
  std::memcpy(&arguments, init.data() + std::min(init.size(), sizeof header),
              std::min(sizeof arguments, init.size() - std::min(init.size(), sizeof header)));
  const size_t needed = sizeof header + ((arguments.flags & FUSE_INIT_EXT) != 0
                                             ? offsetof(fuse_init_in, flags2) + sizeof(uint32_t)
                                             : offsetof(fuse_init_in, flags) + sizeof(uint32_t));
  if (init.size() < needed || header.opcode != FUSE_INIT || header.len != init.size())
    return makeError(ErrorCode::kInvalidArgument, where + ": the recorded request is not an INIT");
  // An ended connection stays ended (its mount answers ENOTCONN); its number may be another's.
  pollfd device{adopted->device_.get(), POLLIN, 0};
  if (handover.connection == 0 || ::poll(&device, 1, 0) < 0 ||
      (device.revents & (POLLERR | POLLHUP | POLLNVAL)) != 0)
    return makeError(ErrorCode::kUnavailable, where + ": its connection ended");
  RETURN_IF_ERROR(adopted->openAbortFile());
  RETURN_IF_ERROR(adopted->serve(init));
  adopted->released_ = false;
  return adopted;
}

Status LazyMount::serve(const std::string& init_request) {
  const std::string where = "FUSE mount at " + mountpoint_.string();
  // Requests are read from a clone of the connection's file: a server that dies fails only the
  // requests it had read (the kernel ends them when its file closes); the connection lives on
  // through device_ (or whoever keeps a copy of it).
  clone_.reset(::open("/dev/fuse", O_RDWR | O_CLOEXEC | O_NONBLOCK));
  uint32_t from = static_cast<uint32_t>(device_.get());
  if (!clone_.valid() || ::ioctl(clone_.get(), FUSE_DEV_IOC_CLONE, &from) != 0)
    return makeError(ErrorCode::kUnavailable,
                     where + ": cannot clone its /dev/fuse file: " + std::strerror(errno));
  wake_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake_.valid())
    return makeError(ErrorCode::kInternal, where + ": eventfd: " + std::strerror(errno));
  std::string program = "pullagent";
  char* argv[] = {program.data(), nullptr};
  fuse_args args = FUSE_ARGS_INIT(1, argv);
  const fuse_lowlevel_ops ops = Served::operations();
  session_ = fuse_session_new(&args, &ops, sizeof(ops), this);
  fuse_opt_free_args(&args);
  if (session_ == nullptr)
    return makeError(ErrorCode::kInternal, where + ": fuse_session_new failed");
  // libfuse takes an open /dev/fuse file named /dev/fd/N as it is: it mounts nothing, and
  // closes the file when the session goes.
  const std::string clone_path = "/dev/fd/" + std::to_string(clone_.get());
  if (fuse_session_mount(session_, clone_path.c_str()) != 0)
    return makeError(ErrorCode::kInternal, where + ": libfuse refused its /dev/fuse file");
  (void)clone_.release();  // the session's now
  if (!init_request.empty()) {
    // The kernel sent INIT once, to the first server, and libfuse answers nothing before it:
    // replayed here, libfuse negotiates what the first server did. Its answer reaches no
    // request of this clone (none was read yet), so the kernel drops it.
    init_request_ = init_request;
    fuse_buf buf{};
    buf.size = init_request_.size();
    buf.mem = init_request_.data();
    fuse_session_process_buf(session_, &buf);
  }
  pusher_.start(session_);
  serving_ = kServers;
  for (int i = 0; i < kServers; ++i) {
    servers_.emplace_back([this] {
      serveLoop();
      --serving_;
    });
  }
  return {};
}

void LazyMount::serveLoop() {
  fuse_buf buf{};
  const int fd = fuse_session_fd(session_);
  std::array<pollfd, 2> waiting{{{fd, POLLIN, 0}, {wake_.get(), POLLIN, 0}}};
  while (true) {
    // One server at a time waits for a request (the others wait for their turn), so that a
    // request wakes one thread, not all of them.
    std::unique_lock turn(turn_);
    if (::poll(waiting.data(), waiting.size(), -1) < 0) {
      if (errno == EINTR)
        continue;
      spdlog::error("{}: poll on its /dev/fuse file: {}", options_.name, std::strerror(errno));
      break;
    }
    if (waiting[1].revents != 0)
      break;  // released or unmounting: the eventfd stays readable for every server
    if ((waiting[0].revents & (POLLERR | POLLHUP | POLLNVAL)) != 0) {
      ended_ = true;  // unmounted, or aborted
      break;
    }
    const int got = fuse_session_receive_buf(session_, &buf);
    turn.unlock();
    if (got == -EAGAIN || got == -EINTR)
      continue;
    if (got <= 0) {
      ended_ = true;  // 0: the kernel ended the connection (ENODEV)
      break;
    }
    if (static_cast<size_t>(got) >= sizeof(fuse_in_header)) {
      fuse_in_header header{};
      std::memcpy(&header, buf.mem, sizeof header);
      if (header.opcode == FUSE_INIT) {
        std::lock_guard lock(init_mutex_);
        init_request_.assign(static_cast<const char*>(buf.mem), static_cast<size_t>(got));
      }
    }
    buf.size = static_cast<size_t>(got);
    fuse_session_process_buf(session_, &buf);
  }
  std::free(buf.mem);
}

Status LazyMount::openAbortFile() {
  struct stat mounted_at {};
  if (connection_ == 0 && ::stat(mountpoint_.c_str(), &mounted_at) == 0)
    connection_ = minor(mounted_at.st_dev);
  if (connection_ != 0) {
    const auto abort = std::string(kConnections) + "/" + std::to_string(connection_) + "/abort";
    abort_.reset(::open(abort.c_str(), O_WRONLY | O_CLOEXEC));
    if (!abort_.valid() && errno == ENOENT) {
      // fusectl mounted now; another mount may have mounted it meanwhile (EBUSY): open again
      // either way.
      (void)::mount("fusectl", kConnections, "fusectl", 0, nullptr);
      abort_.reset(::open(abort.c_str(), O_WRONLY | O_CLOEXEC));
    }
  }
  if (!abort_.valid()) {
    return makeError(ErrorCode::kUnavailable, "FUSE mount at " + mountpoint_.string() +
                                                  ": its connection cannot be found in " +
                                                  kConnections +
                                                  " (fusectl), so it could not be ended for sure");
  }
  return {};
}

void LazyMount::setReadAhead() const {
  // The connection's own bdi: a FUSE mount's is named "0:<its device minor>", the number its
  // abort file was found by (no second look at the mountpoint, which could be another mount by
  // then). Best effort: without it, reads go on with the kernel's default window.
  if (connection_ == 0)
    return;
  const std::string path = "/sys/class/bdi/0:" + std::to_string(connection_) + "/read_ahead_kb";
  const UniqueFd file(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  const auto length = static_cast<ssize_t>(std::strlen(kReadAheadKiB));
  if (!file.valid() || ::write(file.get(), kReadAheadKiB, std::strlen(kReadAheadKiB)) != length)
    spdlog::debug("{}: could not set {}: {}", options_.name, path, std::strerror(errno));
}

int LazyMount::libfuseVersion() {
  return fuse_version();
}

std::filesystem::path LazyMount::layerRoot() const {
  return options_.subdir.empty() ? mountpoint_ : mountpoint_ / options_.subdir;
}

void LazyMount::detach() {
  // The servers go on: the connection ends by itself once the kernel lets go of it.
  if (mounted_ && !released_)
    ::umount2(mountpoint_.c_str(), MNT_DETACH);
}

void LazyMount::beginUnmount() {
  if (!mounted_ || released_)
    return;
  stop_.request_stop();  // reads waiting for the network give up
  ::umount2(mountpoint_.c_str(), MNT_DETACH);
}

void LazyMount::wakeServers() {
  if (wake_.valid()) {
    const uint64_t one = 1;
    (void)::write(wake_.get(), &one, sizeof one);
  }
}

void LazyMount::stopServers() {
  // The pusher first, while the servers serve: a push waits for the kernel's lock on a file's
  // pages, which a READ of them holds until a server answers it.
  pusher_.stop();
  wakeServers();
  for (auto& server : servers_)
    server.join();
  servers_.clear();
}

void LazyMount::beginRelease() {
  pusher_.beginStop([this] { wakeServers(); });  // the servers once the pusher stopped
}

void LazyMount::release(std::chrono::steady_clock::time_point give_up) {
  // The servers finish what they read, then stop; a read still waiting for the network at
  // `give_up` fails, rather than hold the process past its stop timeout.
  beginRelease();
  while (serving_.load() > 0 && std::chrono::steady_clock::now() < give_up)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  if (serving_.load() > 0)
    stop_.request_stop();
  stopServers();
  released_ = true;
}

LazyMount::~LazyMount() {
  if (mounted_ && !released_) {
    stop_.request_stop();  // reads waiting for the network give up
    // The kernel ends the connection when the mount goes (the servers see it and stop);
    // should anything still hold the mount, the connection is aborted. The abort file was
    // opened at mount time: once this connection is gone, writing to it does nothing, so
    // another mount that took its number later is never touched.
    ::umount2(mountpoint_.c_str(), MNT_DETACH);
    for (auto waited = std::chrono::milliseconds(0); !ended_ && waited < unmount_wait_;
         waited += std::chrono::milliseconds(20))
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (abort_.valid())
      (void)::write(abort_.get(), "1", 1);
  }
  stopServers();
  if (session_ != nullptr)
    fuse_session_destroy(session_);  // closes the clone
}

}  // namespace pullagent::puller::estargz
