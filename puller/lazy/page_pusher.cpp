#define FUSE_USE_VERSION 312
#include "puller/lazy/page_pusher.h"

#include <fuse_lowlevel.h>
#include <pthread.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>
#include <new>
#include <optional>

#include "base/confined_root.h"

namespace pullagent::puller::estargz {

PagePusher::PagePusher(LazyLayer& layer, const LayerTree& tree, std::function<uint64_t(size_t)> ino,
                       std::string name)
    : tree_(tree),
      layer_(layer),
      ino_(std::move(ino)),
      name_(std::move(name)),
      state_(new std::atomic<uint8_t>[tree.size()]()) {}

PagePusher::~PagePusher() {
  stop();
}

void PagePusher::start(fuse_session* session) {
  stop();
  session_ = session;
  {
    std::lock_guard lock(mutex_);
    accepting_ = true;
    alive_ = true;
    then_ = nullptr;
  }
  thread_ = std::jthread([this](const std::stop_token& stop) {
    (void)::pthread_setname_np(::pthread_self(), "lazy-pusher");  // for top and perf
    run(stop);
    std::function<void()> then;
    {
      std::lock_guard lock(mutex_);
      alive_ = false;
      then = std::move(then_);
      then_ = nullptr;
    }
    if (then)
      then();
  });
}

void PagePusher::beginStop(std::function<void()> then) {
  {
    std::lock_guard lock(mutex_);
    accepting_ = false;
    // What is dropped is not in the kernel: a next server's listings push it.
    for (const size_t node : queue_) {
      uint8_t queued = kQueued;
      state_[node].compare_exchange_strong(queued, kNone);
    }
    for (const auto& [due, retry] : retries_) {
      uint8_t claimed = kInKernel;
      state_[retry.node].compare_exchange_strong(claimed, kNone);
    }
    queue_.clear();
    retries_.clear();
    if (alive_) {
      // Every caller's, in order: each waits for the same stop.
      if (then_ && then)
        then_ = [first = std::move(then_), second = std::move(then)] {
          first();
          second();
        };
      else if (then)
        then_ = std::move(then);
      then = nullptr;
    }
  }
  thread_.request_stop();  // wakes its wait; a push under way finishes first
  if (then)
    then();
}

void PagePusher::stop() {
  beginStop();
  if (thread_.joinable())
    thread_.join();
}

void PagePusher::forgotten(size_t node) {
  uint8_t was = state_[node].load(std::memory_order_relaxed);
  while (was != kRefused && !state_[node].compare_exchange_weak(was, kNone)) {
  }
}

bool PagePusher::worthPushing(size_t node) const {
  const LayerTree::Node& found = tree_.node(node);
  if (found.type != S_IFREG || found.entry == nullptr || found.entry->size == 0 ||
      found.entry->size > kMaxFileBytes || found.entry->chunks.size() > kMaxChunks)
    return false;
  // What its chunks inflate before they reach their bytes counts too (a TOC may place a small
  // file's chunk deep inside a big member), and what is read from the copy (a member runs to
  // the next one the TOC names). Each is bounded alone first, so that the sums cannot wrap.
  uint64_t inflated = 0;
  uint64_t compressed = 0;
  for (const Chunk& chunk : found.entry->chunks) {
    const uint64_t member = layer_.memberBytes(chunk);
    if (chunk.inner_offset > kMaxInflateBytes || chunk.size > kMaxInflateBytes ||
        member > kMaxInflateBytes)
      return false;
    inflated += chunk.inner_offset + chunk.size;
    compressed += member;
  }
  return inflated <= kMaxInflateBytes && compressed <= kMaxInflateBytes;
}

void PagePusher::listed(const std::vector<size_t>& nodes) noexcept {
  bool any = false;
  try {
    std::lock_guard lock(mutex_);
    if (!accepting_)
      return;
    for (const size_t node : nodes) {
      uint8_t none = kNone;
      if (state_[node].load(std::memory_order_relaxed) != kNone || !worthPushing(node) ||
          !state_[node].compare_exchange_strong(none, kQueued))
        continue;
      queue_.push_back(node);
      any = true;
    }
    while (queue_.size() > kMaxQueued) {
      uint8_t queued = kQueued;
      state_[queue_.front()].compare_exchange_strong(queued, kNone);
      queue_.pop_front();
    }
  } catch (const std::bad_alloc&) {
    // Not pushed: those files are read the ordinary way.
  }
  if (any)
    ready_.notify_one();
}

void PagePusher::run(const std::stop_token& stop) {
  while (true) {
    std::optional<size_t> node;
    std::optional<Retry> retry;
    {
      std::unique_lock lock(mutex_);
      while (!node && !retry) {
        if (stop.stop_requested())
          return;
        if (!retries_.empty() && retries_.begin()->first <= std::chrono::steady_clock::now()) {
          retry = std::move(retries_.begin()->second);
          retries_.erase(retries_.begin());
        } else if (!queue_.empty()) {
          node = queue_.front();
          queue_.pop_front();
        } else if (retries_.empty()) {
          ready_.wait(lock, stop, [&] { return !queue_.empty(); });
        } else {
          ready_.wait_until(lock, stop, retries_.begin()->first, [&] { return !queue_.empty(); });
        }
      }
    }
    const size_t at = retry ? retry->node : *node;
    try {
      if (retry)
        store(at, std::move(retry->bytes), retry->attempt);
      else
        push(at);
    } catch (...) {
      // Not pushed (no exception may end the thread, and the process with it): read the
      // ordinary way.
      state_[at].store(kNone);
      ++skipped_;
    }
  }
}

void PagePusher::push(size_t node) {
  // Claimed first: a reader that read it meanwhile (kInKernel) or a FORGET (kNone) ends it.
  uint8_t queued = kQueued;
  if (!state_[node].compare_exchange_strong(queued, kInKernel))
    return;
  const Entry& entry = *tree_.node(node).entry;
  auto bytes = layer_.readHeld(entry);
  if (!bytes || bytes->size() != entry.size) {
    // Not held yet (a later listing may find it held), or held bytes that failed: its reader's
    // read fetches them again and says what went wrong, with the file's name.
    const bool failed = bytes.ok() || bytes.error().code != ErrorCode::kUnavailable;
    state_[node].store(failed ? kRefused : kNone);
    ++skipped_;
    return;
  }
  store(node, std::move(bytes.value()), 0);
}

void PagePusher::store(size_t node, std::string bytes, int attempt) {
  if (state_[node].load() != kInKernel)
    return;  // forgotten meanwhile
  // FUSE_BUFVEC_INIT spelled out (a compound literal, which is not C++).
  fuse_bufvec data{};
  data.count = 1;
  data.buf[0].size = bytes.size();
  data.buf[0].mem = bytes.data();
  data.buf[0].fd = -1;
  const int stored = fuse_lowlevel_notify_store(session_, ino_(node), 0, &data,
                                                static_cast<fuse_buf_copy_flags>(0));
  if (stored == 0) {
    ++files_;
    bytes_ += static_cast<int64_t>(bytes.size());
    return;
  }
  if (stored == -ENOENT && attempt < kRetries) {
    // The lister makes the inodes once it runs again after the answer: not yet. Asked again
    // later, without holding up the files behind it.
    const auto due =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(1 << (2 * attempt));
    try {
      std::lock_guard lock(mutex_);
      retries_.emplace(due, Retry{node, attempt + 1, std::move(bytes)});
      return;
    } catch (const std::bad_alloc&) {
      // Counted as missed below.
    }
  }
  ++missed_;
  uint8_t pushed = kInKernel;
  state_[node].compare_exchange_strong(pushed, kNone);
  if (stored != -ENOENT) {
    spdlog::debug(
        "{}: pushing /{} to the page cache: {}", name_,
        ConfinedRoot::join(tree_.node(node).entry->path, tree_.node(node).entry->path.size()),
        std::strerror(-stored));
  }
}

PagePusher::Stats PagePusher::stats() const {
  return {files_.load(), bytes_.load(), missed_.load(), skipped_.load()};
}

}  // namespace pullagent::puller::estargz
