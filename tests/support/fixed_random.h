#pragma once

#include "base/random.h"

namespace pullagent::testing {

// Randomness pinned to one value, so that jittered backoff is asserted exactly: 1.0 is the
// longest wait the jitter allows, 0.5 the middle.
class FixedRandom final : public Random {
 public:
  explicit FixedRandom(double value) : value_(value) {}
  double uniform() override { return value_; }

 private:
  double value_;
};

}  // namespace pullagent::testing
