#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"

namespace pullagent::puller {

// How a large blob is fetched over several connections at once. A registry or a CDN in front of
// its storage often caps each connection at a few tens of MB/s; ranges fetched side by side add
// up. One stream when `connections` is 1 or the blob is smaller than two parts.
struct RangeSettings {
  int connections = 4;
  int64_t min_part = int64_t{16} << 20;  // no range is smaller than this
};

// One range of a blob: [begin, end), of which the first `received` bytes are written.
struct BlobPart {
  int64_t begin = 0;
  int64_t end = 0;
  int64_t received = 0;

  int64_t next() const { return begin + received; }
  bool complete() const { return begin + received == end; }
  // The Range header that asks for what is missing: "bytes=<next>-<end - 1>".
  std::string rangeHeader() const;
};

// The parts of one blob's download from `from` (the bytes the ingest holds already) to `size`:
// as many as the settings allow, none smaller than min_part, covering the rest exactly. The
// parts and what each received outlive a failed attempt: the next one asks for the missing
// bytes of each part only.
class BlobParts {
 public:
  BlobParts(int64_t from, int64_t size, const RangeSettings& settings);

  std::vector<BlobPart>& parts() { return parts_; }
  const std::vector<BlobPart>& parts() const { return parts_; }
  bool ranged() const { return parts_.size() > 1; }
  // The server ignored Range: part `index` goes on to the blob's end as one stream, and the
  // parts after it are dropped (with what they received: the stream sends those bytes again).
  void collapse(size_t index);
  // The end of the bytes received without a gap from the first part on: what may join the
  // verified prefix.
  int64_t contiguousEnd() const;
  // Bytes received in all, from the first part's start.
  int64_t received() const;
  bool complete() const { return contiguousEnd() == size_; }
  // Bytes written by every attempt so far, kept when a collapse drops parts: whether an attempt
  // delivered anything.
  void wrote(int64_t bytes) { written_ += bytes; }
  int64_t written() const { return written_; }

 private:
  int64_t size_;
  std::vector<BlobPart> parts_;
  int64_t written_ = 0;
};

// A 206's Content-Range for a request of bytes `first`-`last` of a `size`-byte blob: it must
// start at `first`, end at or before `last` (a server may send less; the rest is asked again)
// and give the blob's size (or "*"). Returns the last byte it covers.
Result<int64_t> checkPartRange(const std::optional<std::string>& header, int64_t first,
                               int64_t last, int64_t size);

}  // namespace pullagent::puller
