#include "puller/oci/pipelined_sha256.h"

namespace pullagent::puller {

PipelinedSha256::PipelinedSha256(size_t buffers, size_t buffer_size)
    : buffer_size_(buffer_size),
      buffers_(buffers < 2 ? 2 : buffers, std::vector<char>(buffer_size)),
      busy_(buffers_.size(), false),
      worker_([this] { run(); }) {}

PipelinedSha256::~PipelinedSha256() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  worker_.join();
}

char* PipelinedSha256::acquire() {
  if (acquired_)
    current_ = (current_ + 1) % buffers_.size();
  acquired_ = true;
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [&] { return !busy_[current_]; });
  return buffers_[current_].data();
}

void PipelinedSha256::submit(size_t length) {
  if (length == 0)
    return;
  {
    std::lock_guard lock(mutex_);
    busy_[current_] = true;
    queue_.emplace_back(current_, length);
  }
  changed_.notify_all();
}

Digest PipelinedSha256::finish() {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [&] {
    return queue_.empty() && std::find(busy_.begin(), busy_.end(), true) == busy_.end();
  });
  return hasher_.finish();
}

void PipelinedSha256::run() {
  while (true) {
    std::pair<size_t, size_t> job;
    {
      std::unique_lock lock(mutex_);
      changed_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty())
        return;  // stopping with nothing left
      job = queue_.front();
      queue_.pop_front();
    }
    hasher_.update({buffers_[job.first].data(), job.second});
    {
      std::lock_guard lock(mutex_);
      busy_[job.first] = false;
    }
    changed_.notify_all();
  }
}

}  // namespace pullagent::puller
