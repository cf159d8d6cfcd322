#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "puller/lazy/layer_tree.h"
#include "puller/lazy/lazy_layer.h"

struct fuse_session;

namespace pullagent::puller::estargz {

// Puts the bytes of the small files a listing showed into the kernel's page cache before anyone
// reads them (FUSE_NOTIFY_STORE), so that reading them costs no round trip to the server.
//
// Why: a walk over a lazy layer (a read-heavy start, an archiver, a scan) reads each small file
// with one READ, and each READ is a round trip that wakes the server and then the reader: on
// these machines that, not the bytes, was most of the time. A listing is the best hint of what
// a walk reads next, and by the time the kernel has the listing it also has the files' inodes
// (readdirplus makes them), which a push needs.
//
// What is pushed: only regular files of at most kMaxFileBytes whose bytes the layer holds
// already (a push never makes a request to the registry), verified against their chunk digests
// like every read, once per inode the kernel keeps (forgotten() starts over). One thread per mount
// does the work: it takes CPU only while listed files wait, and a file it has not pushed by the
// time it is read is read the ordinary way.
class PagePusher {
 public:
  static constexpr uint64_t kMaxFileBytes = uint64_t{256} << 10;
  // Listed files waiting past this many: the oldest are dropped (a walk has read them by now).
  static constexpr size_t kMaxQueued = 65536;

  // `ino` maps a tree index to the node id the kernel knows it by.
  PagePusher(LazyLayer& layer, const LayerTree& tree, std::function<uint64_t(size_t)> ino,
             std::string name, std::chrono::seconds read_timeout);
  ~PagePusher();
  PagePusher(const PagePusher&) = delete;
  PagePusher& operator=(const PagePusher&) = delete;

  // Pushes through `session` (its /dev/fuse file) until stop().
  void start(fuse_session* session);
  // Stops the thread once its current file is done; what is queued is dropped.
  void stop();

  // The nodes a readdirplus answer just showed the kernel.
  void listed(const std::vector<size_t>& nodes);
  // The kernel read from the node (so its pages are there, or being read).
  void read(size_t node) { in_kernel_[node].store(true, std::memory_order_relaxed); }
  // The kernel let go of the node's inode, and with it its pages.
  void forgotten(size_t node) { in_kernel_[node].store(false, std::memory_order_relaxed); }

  struct Stats {
    int64_t files = 0;    // pushed
    int64_t bytes = 0;    // their bytes
    int64_t missed = 0;   // pushes the kernel refused (the inode was gone)
    int64_t skipped = 0;  // listed files passed over: not held yet, or not readable
  };
  Stats stats() const;

 private:
  void run(const std::stop_token& stop);
  void push(size_t node, const std::stop_token& stop);

  LazyLayer& layer_;
  const LayerTree& tree_;
  std::function<uint64_t(size_t)> ino_;
  std::string name_;
  std::chrono::seconds read_timeout_;
  fuse_session* session_ = nullptr;
  // Per node: its pages are in the kernel already (pushed, or read), as far as this server knows.
  std::unique_ptr<std::atomic<bool>[]> in_kernel_;
  std::mutex mutex_;
  std::condition_variable_any ready_;
  std::deque<size_t> queue_;
  bool running_ = false;  // between start() and stop()
  std::jthread thread_;
  std::atomic<int64_t> files_{0};
  std::atomic<int64_t> bytes_{0};
  std::atomic<int64_t> missed_{0};
  std::atomic<int64_t> skipped_{0};
};

}  // namespace pullagent::puller::estargz
