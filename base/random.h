#pragma once

#include <mutex>
#include <random>

namespace pullagent {

// Randomness for backoff jitter, injected so tests can pin it.
class Random {
 public:
  virtual ~Random() = default;
  // Uniform in [0, 1).
  virtual double uniform() = 0;
};

class SystemRandom final : public Random {
 public:
  SystemRandom();
  double uniform() override;

 private:
  std::mutex mutex_;
  std::mt19937_64 engine_;
};

}  // namespace pullagent
