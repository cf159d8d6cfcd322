#include "agent/common/progress.h"

#include <spdlog/spdlog.h>

#include <cstdio>

namespace pullagent::agent {

std::string humanBytes(int64_t bytes) {
  const char* units[] = {"B", "kB", "MB", "GB", "TB"};
  auto value = static_cast<double>(bytes);
  size_t unit = 0;
  while (value >= 1000.0 && unit + 1 < std::size(units)) {
    value /= 1000.0;
    ++unit;
  }
  char text[32];
  std::snprintf(text, sizeof text, unit == 0 ? "%.0f %s" : "%.1f %s", value, units[unit]);
  return text;
}

PullProgress::PullProgress(const Clock& clock, bool terminal) : clock_(clock), terminal_(terminal) {
  if (terminal_)
    renderer_ = std::jthread([this](std::stop_token stop) { renderLoop(stop); });
}

PullProgress::~PullProgress() {
  finish();
}

void PullProgress::finish() {
  if (renderer_.joinable()) {
    renderer_.request_stop();
    renderer_.join();
    render(true);
  }
}

void PullProgress::onManifest(const puller::Descriptor& manifest,
                              const std::vector<puller::Descriptor>& layers) {
  std::lock_guard lock(mutex_);
  for (const auto& layer : layers) {
    auto key = layer.digest.hex();
    if (rows_.count(key) != 0)
      continue;
    order_.push_back(key);
    rows_[key] = Row{key.substr(0, 12), layer.size, 0, false, false, {}};
  }
  if (!terminal_) {
    spdlog::info("manifest {} ({}): {} layers, {}", manifest.digest.str(), manifest.media_type,
                 layers.size(), humanBytes([&] {
                   int64_t total = 0;
                   for (const auto& layer : layers)
                     total += layer.size;
                   return total;
                 }()));
  }
}

void PullProgress::onBlobStart(const puller::Descriptor& blob, int64_t offset) {
  std::lock_guard lock(mutex_);
  auto& row = rows_[blob.digest.hex()];
  if (row.label.empty())
    row.label = blob.digest.hex().substr(0, 12), row.size = blob.size;
  row.done = offset;
  row.started = clock_.now();
  if (!terminal_) {
    if (offset > 0) {
      spdlog::info("blob {}: resuming at {} of {}", blob.digest.str(), humanBytes(offset),
                   humanBytes(blob.size));
    } else {
      spdlog::info("blob {}: downloading {}", blob.digest.str(), humanBytes(blob.size));
    }
  }
}

void PullProgress::onBlobBytes(const puller::Descriptor& blob, int64_t bytes) {
  std::lock_guard lock(mutex_);
  rows_[blob.digest.hex()].done += bytes;
}

void PullProgress::onBlobDone(const puller::Descriptor& blob, bool was_present) {
  std::lock_guard lock(mutex_);
  auto it = rows_.find(blob.digest.hex());
  if (it != rows_.end()) {
    it->second.finished = true;
    it->second.present = was_present;
    it->second.done = blob.size;
  }
  if (!terminal_) {
    spdlog::info("blob {}: {}", blob.digest.str(),
                 was_present ? "already present" : "verified (" + humanBytes(blob.size) + ")");
  }
}

void PullProgress::renderLoop(std::stop_token stop) {
  SystemClock sleeper;
  while (!stop.stop_requested()) {
    render(false);
    sleeper.sleepFor(std::chrono::milliseconds(200), stop);
  }
}

void PullProgress::render(bool final_frame) {
  std::lock_guard lock(mutex_);
  std::string frame;
  if (lines_drawn_ > 0)
    frame += "\x1b[" + std::to_string(lines_drawn_) + "F";
  constexpr int kWidth = 30;
  auto now = clock_.now();
  for (const auto& key : order_) {
    const Row& row = rows_[key];
    double fraction =
        row.size > 0 ? static_cast<double>(row.done) / static_cast<double>(row.size) : 1.0;
    int filled = static_cast<int>(fraction * kWidth);
    std::string bar(static_cast<size_t>(filled), '#');
    bar.resize(kWidth, ' ');
    std::string state;
    if (row.present) {
      state = "already present";
    } else if (row.finished) {
      state = "verified";
    } else if (row.started != std::chrono::steady_clock::time_point{}) {
      auto seconds = std::chrono::duration<double>(now - row.started).count();
      state = seconds > 0.2
                  ? humanBytes(static_cast<int64_t>(static_cast<double>(row.done) / seconds)) + "/s"
                  : "";
    } else {
      state = "waiting";
    }
    frame += "\x1b[2K" + row.label + " [" + bar + "] " + humanBytes(row.done) + " / " +
             humanBytes(row.size) + "  " + state + "\n";
  }
  lines_drawn_ = order_.size();
  (void)final_frame;
  std::fputs(frame.c_str(), stderr);
  std::fflush(stderr);
}

}  // namespace pullagent::agent
