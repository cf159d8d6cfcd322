#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace pullagent::puller {

// Why signatures were not accepted, for an error text a hostile registry cannot grow: it may
// offer thousands of broken signatures, and the text ends up in the site's state file and in
// every retry's log line. Keeps the first kMax reasons, each cut at kMaxText bytes, and counts
// the rest.
class SignatureReasons {
 public:
  static constexpr size_t kMax = 8;
  static constexpr size_t kMaxText = 300;

  void add(std::string reason) {
    if (kept_.size() == kMax) {
      ++more_;
      return;
    }
    if (reason.size() > kMaxText)
      reason = reason.substr(0, kMaxText) + "…";
    kept_.push_back(std::move(reason));
  }
  bool empty() const { return kept_.empty(); }
  // "; first; second; and 3 more", or "" when there is none.
  std::string joined() const {
    std::string text;
    for (const auto& reason : kept_)
      text += "; " + reason;
    if (more_ > 0)
      text += "; and " + std::to_string(more_) + " more";
    return text;
  }

 private:
  std::vector<std::string> kept_;
  size_t more_ = 0;
};

}  // namespace pullagent::puller
