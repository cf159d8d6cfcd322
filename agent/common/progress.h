#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "puller/oci/pull_observer.h"

namespace pullagent::agent {

// Shows a pull to a person: on a terminal one bar per layer with bytes and rate, redrawn a few
// times a second; otherwise one log line per phase. (The pipeline counts the bytes itself:
// PullOutcome::transferred.)
class PullProgress final : public puller::PullObserver {
 public:
  PullProgress(const Clock& clock, bool terminal);
  ~PullProgress() override;

  void onManifest(const puller::Descriptor& manifest,
                  const std::vector<puller::Descriptor>& layers) override;
  void onBlobStart(const puller::Descriptor& blob, int64_t offset) override;
  void onBlobBytes(const puller::Descriptor& blob, int64_t bytes) override;
  void onBlobDone(const puller::Descriptor& blob, bool was_present) override;

  // Stops redrawing and leaves the final state on screen.
  void onPullDone() override { finish(); }
  void finish();

 private:
  struct Row {
    std::string label;
    int64_t size = 0;
    int64_t done = 0;
    bool finished = false;
    bool present = false;
    std::chrono::steady_clock::time_point started{};
  };
  void render(bool final_frame);
  void renderLoop(std::stop_token stop);

  const Clock& clock_;
  const bool terminal_;
  std::mutex mutex_;
  std::vector<std::string> order_;
  std::map<std::string, Row> rows_;
  size_t lines_drawn_ = 0;
  std::jthread renderer_;
};

std::string humanBytes(int64_t bytes);

}  // namespace pullagent::agent
