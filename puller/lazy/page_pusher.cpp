#define FUSE_USE_VERSION 312
#include "puller/lazy/page_pusher.h"

#include <fuse_lowlevel.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>

#include "base/clock.h"
#include "base/confined_root.h"
#include "base/context.h"

namespace pullagent::puller::estargz {

PagePusher::PagePusher(LazyLayer& layer, const LayerTree& tree, std::function<uint64_t(size_t)> ino,
                       std::string name, std::chrono::seconds read_timeout)
    : layer_(layer),
      tree_(tree),
      ino_(std::move(ino)),
      name_(std::move(name)),
      read_timeout_(read_timeout),
      in_kernel_(new std::atomic<bool>[tree.size()]()) {}

PagePusher::~PagePusher() {
  stop();
}

void PagePusher::start(fuse_session* session) {
  stop();
  session_ = session;
  {
    std::lock_guard lock(mutex_);
    running_ = true;
  }
  thread_ = std::jthread([this](const std::stop_token& stop) { run(stop); });
}

void PagePusher::stop() {
  {
    std::lock_guard lock(mutex_);
    if (!running_)
      return;
    running_ = false;
    queue_.clear();
  }
  thread_.request_stop();  // wakes its wait
  thread_.join();
}

void PagePusher::listed(const std::vector<size_t>& nodes) {
  bool any = false;
  {
    std::lock_guard lock(mutex_);
    if (!running_)
      return;
    for (const size_t index : nodes) {
      const LayerTree::Node& node = tree_.node(index);
      if (node.type != S_IFREG || node.entry == nullptr || node.entry->size == 0 ||
          node.entry->size > kMaxFileBytes || in_kernel_[index].load(std::memory_order_relaxed))
        continue;
      queue_.push_back(index);
      any = true;
    }
    while (queue_.size() > kMaxQueued)
      queue_.pop_front();
  }
  if (any)
    ready_.notify_one();
}

void PagePusher::run(const std::stop_token& stop) {
  while (true) {
    size_t index = 0;
    {
      std::unique_lock lock(mutex_);
      if (!ready_.wait(lock, stop, [&] { return !queue_.empty(); }))
        return;
      index = queue_.front();
      queue_.pop_front();
    }
    push(index, stop);
  }
}

void PagePusher::push(size_t index, const std::stop_token& stop) {
  // Claimed first: a reader that reads it meanwhile has its pages anyway.
  if (in_kernel_[index].exchange(true))
    return;
  const Entry& entry = *tree_.node(index).entry;
  if (!layer_.holds(entry)) {
    in_kernel_[index].store(false);  // a later listing may find it held
    ++skipped_;
    return;
  }
  static const SystemClock clock;
  const Context ctx{&clock, stop, clock.now() + read_timeout_};
  auto bytes = layer_.read(entry, 0, entry.size, ctx);
  if (!bytes || bytes->size() != entry.size) {
    // Not pushed: its read will say what is wrong (the reader's, with the file's name).
    in_kernel_[index].store(false);
    ++skipped_;
    return;
  }
  fuse_bufvec data = FUSE_BUFVEC_INIT(bytes->size());
  data.buf[0].mem = bytes->data();
  // The kernel makes the listed inodes once the lister runs again, which may be a moment after
  // the answer was sent: ENOENT then is "not yet", asked twice more.
  int stored = -ENOENT;
  for (int attempt = 0; attempt < 3 && stored == -ENOENT && !stop.stop_requested(); ++attempt) {
    if (attempt > 0)
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    stored = fuse_lowlevel_notify_store(session_, ino_(index), 0, &data,
                                        static_cast<fuse_buf_copy_flags>(0));
  }
  if (stored != 0) {
    ++missed_;
    in_kernel_[index].store(false);
    if (stored != -ENOENT)
      spdlog::debug("{}: pushing /{} to the page cache: {}", name_,
                    ConfinedRoot::join(entry.path, entry.path.size()), std::strerror(-stored));
    return;
  }
  ++files_;
  bytes_ += static_cast<int64_t>(entry.size);
}

PagePusher::Stats PagePusher::stats() const {
  return {files_.load(), bytes_.load(), missed_.load(), skipped_.load()};
}

}  // namespace pullagent::puller::estargz
