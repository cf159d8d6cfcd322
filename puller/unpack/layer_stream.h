#pragma once

#include <string>

#include <cstdint>
#include <memory>
#include <string_view>

#include "base/error.h"
#include "base/unique_fd.h"

namespace pullagent::puller {

enum class Compression { kNone, kGzip, kZstd };

struct LayerLimits {
  int64_t max_uncompressed_bytes = int64_t{64} << 30;  // per layer: stops decompression bombs
  int64_t max_entries = 2'000'000;                     // per layer
  int zstd_max_window_log = 27;                        // 128 MiB window at most
};

// The compression a layer media type promises (nullopt-like kNone for plain tar); unknown types
// are refused.
Result<Compression> compressionOf(std::string_view media_type);

// A layer blob as its decompressed tar stream. Refuses a blob whose magic bytes contradict
// the media type, and a stream that grows past the configured size.
class LayerStream {
 public:
  virtual ~LayerStream() = default;
  // Fills up to `capacity` bytes; 0 means the end of the stream.
  virtual Result<size_t> read(char* out, size_t capacity) = 0;
  virtual int64_t produced() const = 0;
};

Result<std::unique_ptr<LayerStream>> openLayerStream(UniqueFd blob, std::string_view media_type,
                                                     const LayerLimits& limits);

// The gzip and zstd decoders layers are read with (ISA-L igzip, zstd), for --version.
std::string decompressorVersions();

}  // namespace pullagent::puller
