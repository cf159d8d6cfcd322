#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

#include "base/error.h"
#include "puller/state/state_dir.h"

namespace pullagent::puller {

// How many bytes of disk a compressed layer takes once unpacked, learned from the images this
// host published: admission predicts a pull's peak with it before the first blob byte. Kept in
// <state>/unpack-ratio.json ({"recent": [2.4, 2.9, ...]}, written atomically): the ratio of
// each of the last kKept images, each within [kMin, kMax]; the ratio is their median, so that
// no few images (one tenant's gzip bombs, or layers of random bytes) move it far. Until
// something is learned (or when the record does not read) it is kDefault: container layers are
// gzip'd text, libraries and binaries, and unpack to between 2 and 3 times their size.
class UnpackRatio {
 public:
  static constexpr double kDefault = 3.0;
  static constexpr double kMin = 1.0;
  static constexpr double kMax = 20.0;
  static constexpr size_t kKept = 31;

  explicit UnpackRatio(const StateDir& state) : path_(state.unpackRatio()) {}

  double ratio() const;
  // Adds one published image's figures: its layers' compressed bytes and the disk they take.
  Status learn(int64_t compressed_bytes, int64_t unpacked_bytes) const;

 private:
  std::vector<double> read() const;

  std::filesystem::path path_;
};

}  // namespace pullagent::puller
