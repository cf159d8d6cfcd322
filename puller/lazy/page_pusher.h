#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
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
// a walk reads next, and by the time the lister runs again the kernel has the listed files'
// inodes (readdirplus makes them), which a push needs.
//
// What is pushed: only regular files of at most kMaxFileBytes, cheap to read (kMaxChunks
// chunks; kMaxInflateBytes read from the copy and inflated, in all), whose chunks the layer
// holds already. A push never
// makes a request to the registry: held bytes are read and checked against their chunk digests
// like every read, and a file whose held bytes fail is left to its reader's read (which fetches
// it again) and never pushed. A file is pushed once while the kernel keeps its inode (read() and
// forgotten() say what the kernel has). One thread per mount does the work: it takes CPU only
// while listed files wait, and a file it has not pushed by the time it is read is read the
// ordinary way.
//
// Stopping: a push waits for the kernel's lock on the file's pages, which a READ of the same
// pages holds until a server answers it. So the servers must go on serving until the pusher
// stopped: beginStop() says what to do then.
class PagePusher {
 public:
  static constexpr uint64_t kMaxFileBytes = uint64_t{256} << 10;
  static constexpr size_t kMaxChunks = 16;
  static constexpr uint64_t kMaxInflateBytes = uint64_t{1} << 20;
  // Listed files waiting past this many: the oldest are dropped (a walk has read them by now).
  static constexpr size_t kMaxQueued = 65536;

  // `ino` maps a tree index to the node id the kernel knows it by.
  PagePusher(LazyLayer& layer, const LayerTree& tree, std::function<uint64_t(size_t)> ino,
             std::string name);
  ~PagePusher();
  PagePusher(const PagePusher&) = delete;
  PagePusher& operator=(const PagePusher&) = delete;

  // Pushes through `session` (its /dev/fuse file) until stopped.
  void start(fuse_session* session);
  // Asks the thread to stop after its current push, and returns at once; `then` runs once it
  // stopped (on the thread, or here if it was not running). What is queued is dropped.
  void beginStop(std::function<void()> then = {});
  // beginStop(), then waits for the thread (the servers must still serve).
  void stop();

  // The nodes a readdirplus answer just showed the kernel. Never throws: it runs after the
  // answer, when the request is gone.
  void listed(const std::vector<size_t>& nodes) noexcept;
  // The kernel read from the node (so its pages are there, or being read).
  void read(size_t node) { state_[node].store(kInKernel, std::memory_order_relaxed); }
  // The kernel let go of the node's inode, and with it its pages.
  void forgotten(size_t node);

  struct Stats {
    int64_t files = 0;    // pushed
    int64_t bytes = 0;    // their bytes
    int64_t missed = 0;   // pushes the kernel refused (the inode was gone)
    int64_t skipped = 0;  // listed files passed over: not held yet, or held bytes that failed
  };
  Stats stats() const;

 private:
  // Per node, what this server knows of the kernel's copy.
  enum State : uint8_t {
    kNone,      // none
    kQueued,    // listed, waiting for a push
    kInKernel,  // pushed or read
    kRefused,   // its held bytes failed their digest: never pushed
  };
  // A push the kernel answered ENOENT: the lister has not made the inode yet.
  struct Retry {
    size_t node = 0;
    int attempt = 0;
    std::string bytes;
  };
  static constexpr int kRetries = 6;  // after 1, 4, 16, 64, 256 and 1024 ms

  bool worthPushing(size_t node) const;
  void run(const std::stop_token& stop);
  void push(size_t node);
  void store(size_t node, std::string bytes, int attempt);

  const LayerTree& tree_;
  LazyLayer& layer_;
  std::function<uint64_t(size_t)> ino_;
  std::string name_;
  fuse_session* session_ = nullptr;
  std::unique_ptr<std::atomic<uint8_t>[]> state_;
  std::mutex mutex_;
  std::condition_variable_any ready_;
  std::deque<size_t> queue_;
  std::multimap<std::chrono::steady_clock::time_point, Retry> retries_;  // by when due
  bool accepting_ = false;      // started, and not asked to stop: listings are queued
  bool alive_ = false;          // the thread runs (it may be stopping)
  std::function<void()> then_;  // what runs once it stopped
  std::jthread thread_;
  std::atomic<int64_t> files_{0};
  std::atomic<int64_t> bytes_{0};
  std::atomic<int64_t> missed_{0};
  std::atomic<int64_t> skipped_{0};
};

}  // namespace pullagent::puller::estargz
