#include "base/random.h"

namespace pullagent {

SystemRandom::SystemRandom() : engine_(std::random_device{}()) {}

double SystemRandom::uniform() {
  std::lock_guard lock(mutex_);
  return std::uniform_real_distribution<double>(0.0, 1.0)(engine_);
}

}  // namespace pullagent
