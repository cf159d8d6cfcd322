#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <memory>
#include <mutex>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "base/error.h"
#include "base/unique_fd.h"
#include "puller/lazy/layer_tree.h"
#include "puller/lazy/lazy_layer.h"
#include "puller/lazy/page_pusher.h"

struct fuse_session;

namespace pullagent::puller::estargz {

// One eStargz layer mounted read-only with FUSE (libfuse3) at a directory, in the shape overlayfs
// takes as a lower layer (LayerTree): the layer's files before their bytes are on disk. A read
// blocks only for the chunks it touches (LazyLayer fetches and verifies them); a chunk that
// cannot be fetched or does not verify is an EIO on that read and a log line naming the layer
// and the file, never a hang: each read is bounded by `read_timeout`.
//
// The mount is served by threads of this process through libfuse's low-level API, on a clone of
// the connection's /dev/fuse file. The connection itself lives as long as any of its /dev/fuse
// files is open, so a keeper of the first one (deviceFd(): systemd's file descriptor store in
// the service) lets a server hand the mount over to the next (release(), then adopt() in this
// process or the next): requests that arrive meanwhile wait in the kernel's queue. Node ids are
// the layer's tree indexes, the same in every process. See docs/lazy.md, "Restarts".
class LazyMount {
 public:
  struct Options {
    std::string name;  // for logs: the site and layer it serves
    std::chrono::seconds read_timeout{30};
    // Non-empty: the layer is the directory of that name inside the mount, alone there (what a
    // pull's rootfs-mounts.json names as the lower layer). A mountpoint whose server is gone is
    // an empty directory; without the subdirectory an overlay over it would show the image
    // without this layer's files instead of failing to mount.
    std::string subdir;
  };
  // Needs root and /dev/fuse. `layer` must outlive the mount.
  static Result<std::unique_ptr<LazyMount>> mount(LazyLayer& layer,
                                                  const std::filesystem::path& mountpoint,
                                                  Options options);
  // What a next server needs to serve a mount this one made (adopt()).
  struct Handover {
    UniqueFd device;           // the connection's first /dev/fuse file (deviceFd(), kept)
    std::string init_request;  // the INIT request the kernel sent the first server
    unsigned connection = 0;   // its number under /sys/fs/fuse/connections
  };
  // Serves a mount another server made and released (in this process or an earlier one whose
  // /dev/fuse file systemd kept). The layer must be the same one. Refused when the connection
  // ended meanwhile.
  static Result<std::unique_ptr<LazyMount>> adopt(LazyLayer& layer,
                                                  const std::filesystem::path& mountpoint,
                                                  Options options, Handover handover);
  ~LazyMount();  // unmounts, unless released

  // The connection's /dev/fuse file: whoever holds a copy keeps the mount alive for a next
  // server once this one is gone. And the INIT request the next server replays.
  int deviceFd() const { return device_.get(); }
  const std::string& initRequest() const { return init_request_; }
  unsigned connection() const { return connection_; }
  // The libfuse this process serves with (fuse_version(): 314 for 3.14).
  static int libfuseVersion();
  // Stops serving without unmounting, once the requests being served are answered: what
  // arrives later waits in the kernel's queue for the next server (adopt()). The mount and its
  // connection stay as long as someone keeps deviceFd() (dup it first); this object then only
  // closes its files. A read still waiting for the network at `give_up` gives up (EIO): a
  // service stop stays within its timeout. An owner releasing many mounts begins all first.
  void beginRelease();
  void release(std::chrono::steady_clock::time_point give_up = std::chrono::steady_clock::now() +
                                                               std::chrono::seconds(2));
  LazyMount(const LazyMount&) = delete;
  LazyMount& operator=(const LazyMount&) = delete;

  const std::filesystem::path& mountpoint() const { return mountpoint_; }
  // Where the layer's root is: the mountpoint, or its subdirectory (Options::subdir).
  std::filesystem::path layerRoot() const;

  // Retires the mount: detached from the mountpoint (nothing new reaches it) while what holds it
  // already (a container's overlay) reads on; the connection ends when the last of those goes.
  void detach();
  // What the destructor does first, without waiting: an owner ending many mounts begins all,
  // waits once, then destroys them with setUnmountWait(0).
  void beginUnmount();
  // How long the destructor waits for a connection something still holds (an overlay) to be let
  // go before it aborts it: 2 s.
  void setUnmountWait(std::chrono::milliseconds wait) { unmount_wait_ = wait; }
  // The connection ended (detached and let go, or unmounted by someone else).
  bool ended() const { return ended_.load(); }
  // How long reads through the mount took (the wait for their chunks included), in seconds: the
  // upper bounds of the buckets, and one bucket more past the last.
  static constexpr std::array<double, 9> kReadSecondsBounds = {0.001, 0.005, 0.01, 0.05, 0.1,
                                                               0.5,   1,     5,    30};
  using ReadSecondsBuckets = std::array<int64_t, kReadSecondsBounds.size() + 1>;
  struct Stats {
    int64_t reads = 0;
    int64_t read_errors = 0;
    ReadSecondsBuckets read_seconds{};  // reads per bucket (not cumulative)
    double read_seconds_sum = 0;
    int64_t xattr_requests = 0;  // getxattr the kernel asked this server
    PagePusher::Stats pushed;    // files put in the page cache before they were read
  };
  Stats stats() const;

  // Used by the FUSE callbacks (lazy_mount.cpp).
  struct Served;

 private:
  LazyMount(LazyLayer& layer, std::filesystem::path mountpoint, Options options);
  // A session on a clone of device_, served by kServers threads; `init_request` is replayed
  // first when the kernel sent it to an earlier server.
  Status serve(const std::string& init_request);
  void serveLoop();
  // The connection's abort file (fusectl): connection_, or the mountpoint's device number.
  Status openAbortFile();
  void setReadAhead() const;  // the kernel's readahead for the mount: kReadAheadKiB
  void stopServers();
  void wakeServers();  // they stop once they answered what they read

  static constexpr int kServers = 8;
  LazyLayer& layer_;
  LayerTree tree_;
  std::filesystem::path mountpoint_;
  Options options_;
  UniqueFd device_;  // the connection's first /dev/fuse file (the mount's fd= option)
  UniqueFd clone_;   // the one this object reads requests from
  UniqueFd wake_;    // an eventfd: the servers stop
  struct fuse_session* session_ = nullptr;
  std::string init_request_;  // recorded by the server that read it
  std::mutex init_mutex_;
  std::mutex turn_;  // held by the server waiting for the next request
  // The connection's abort file, opened at mount: what ends a connection something still holds
  // at unmount.
  UniqueFd abort_;
  unsigned connection_ = 0;         // 0: not known yet
  std::atomic<bool> ended_{false};  // the kernel ended the connection
  bool mounted_ = false;            // the mount exists: this object unmounts it, unless released
  bool released_ = false;           // the mount is left to the next server
  std::chrono::milliseconds unmount_wait_{2000};
  std::vector<std::thread> servers_;
  PagePusher pusher_;            // the small files listings show, into the page cache
  std::atomic<int> serving_{0};  // servers not stopped yet
  std::stop_source stop_;
  std::atomic<int64_t> reads_{0};
  std::atomic<bool> no_open_{false};     // the kernel opens files without asking (set at init)
  std::atomic<bool> no_opendir_{false};  // and directories
  std::atomic<int64_t> read_errors_{0};
  std::array<std::atomic<int64_t>, kReadSecondsBounds.size() + 1> read_seconds_{};
  std::atomic<int64_t> read_micros_{0};
  std::atomic<int64_t> xattr_requests_{0};
  void countRead(std::chrono::steady_clock::duration took);
};

}  // namespace pullagent::puller::estargz
