#pragma once

#include <cstdint>
#include <filesystem>

#include "base/error.h"
#include "puller/state/state_dir.h"

namespace pullagent::puller {

// How many bytes of disk a compressed layer takes once unpacked, learned from the layers this
// host unpacked: admission predicts a pull's peak with it before the first blob byte. Kept in
// <state>/unpack-ratio.json ({"compressedBytes": N, "unpackedBytes": M}), written atomically;
// totals are halved past 1 TiB so that recent images weigh more. Until something is learned
// (or when the record does not read) the ratio is kDefault: container layers are gzip'd text,
// libraries and binaries, and unpack to between 2 and 3 times their size on ext4 (the
// benchmark images here: 2.1 to 2.9).
class UnpackRatio {
 public:
  static constexpr double kDefault = 3.0;
  static constexpr double kMin = 1.0;
  static constexpr double kMax = 20.0;

  explicit UnpackRatio(const StateDir& state) : path_(state.unpackRatio()) {}

  double ratio() const;
  // Adds one unpacked image's (or layer's) figures.
  Status learn(int64_t compressed_bytes, int64_t unpacked_bytes) const;

 private:
  struct Totals {
    int64_t compressed = 0;
    int64_t unpacked = 0;
  };
  Totals read() const;

  std::filesystem::path path_;
};

}  // namespace pullagent::puller
