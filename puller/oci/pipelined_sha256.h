#pragma once

#include <algorithm>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "puller/oci/digest.h"
#include "puller/oci/sha256.h"

namespace pullagent::puller {

// SHA-256 on its own thread over a ring of buffers: the producer fills buffer i while the
// hasher works through earlier ones. Hashing the decompressed stream (the diff_id) costs about
// as much CPU as inflating and writing it; on two cores this takes it off the unpack thread.
// A buffer handed out by acquire() stays valid until `buffers - 1` further acquire() calls,
// which is what libarchive's read callback contract needs (it holds only the latest block).
class PipelinedSha256 {
 public:
  PipelinedSha256(size_t buffers, size_t buffer_size);
  ~PipelinedSha256();
  PipelinedSha256(const PipelinedSha256&) = delete;
  PipelinedSha256& operator=(const PipelinedSha256&) = delete;

  // The next buffer to fill; waits while the hasher still reads it.
  char* acquire();
  size_t bufferSize() const { return buffer_size_; }
  // Queues the first `length` bytes of the buffer last acquired.
  void submit(size_t length);
  // Waits for everything submitted and returns the digest.
  Digest finish();

 private:
  void run();

  const size_t buffer_size_;
  std::vector<std::vector<char>> buffers_;
  std::vector<bool> busy_;
  size_t current_ = 0;
  bool acquired_ = false;

  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<std::pair<size_t, size_t>> queue_;  // (buffer, length)
  bool stopping_ = false;
  Sha256 hasher_;
  std::thread worker_;
};

}  // namespace pullagent::puller
