#include "puller/unpack/layer_stream.h"

#include <isa-l.h>
#include <isa-l/igzip_lib.h>
#include <zstd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace pullagent::puller {
namespace {

constexpr size_t kInputChunk = 1 << 20;

Error readError(int err) {
  return makeError(ErrorCode::kInternal, std::string("read layer blob: ") + std::strerror(err),
                   err);
}

// Compressed bytes from the blob file, in large chunks.
class BlobInput {
 public:
  explicit BlobInput(UniqueFd fd) : fd_(std::move(fd)), buffer_(kInputChunk) {}

  // Refills when empty; returns false at end of file.
  Result<bool> fill() {
    if (pos_ < size_)
      return true;
    while (true) {
      ssize_t n = ::read(fd_.get(), buffer_.data(), buffer_.size());
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return readError(errno);
      pos_ = 0;
      size_ = static_cast<size_t>(n);
      return n > 0;
    }
  }
  const char* data() const { return buffer_.data() + pos_; }
  size_t available() const { return size_ - pos_; }
  void consume(size_t n) { pos_ += n; }

 private:
  UniqueFd fd_;
  std::vector<char> buffer_;
  size_t pos_ = 0;
  size_t size_ = 0;
};

class BoundedStream : public LayerStream {
 public:
  explicit BoundedStream(const LayerLimits& limits) : limits_(limits) {}
  int64_t produced() const override { return produced_; }

 protected:
  Status account(size_t n) {
    produced_ += static_cast<int64_t>(n);
    if (produced_ > limits_.max_uncompressed_bytes) {
      return makeError(ErrorCode::kResourceExhausted,
                       "layer decompresses to more than " +
                           std::to_string(limits_.max_uncompressed_bytes) + " bytes (limit)");
    }
    return {};
  }
  const LayerLimits& limits_;

 private:
  int64_t produced_ = 0;
};

class PlainStream final : public BoundedStream {
 public:
  PlainStream(UniqueFd fd, const LayerLimits& limits)
      : BoundedStream(limits), input_(std::move(fd)) {}
  Result<size_t> read(char* out, size_t capacity) override {
    ASSIGN_OR_RETURN(auto more, input_.fill());
    if (!more)
      return size_t{0};
    size_t n = std::min(capacity, input_.available());
    std::memcpy(out, input_.data(), n);
    input_.consume(n);
    RETURN_IF_ERROR(account(n));
    return n;
  }

 private:
  BlobInput input_;
};

// gzip (RFC 1952) with ISA-L's igzip, several members in a row allowed as gzip -d accepts.
// igzip inflates about twice as fast as zlib (bench/bench.py), which is most of a pull's CPU.
class GzipStream final : public BoundedStream {
 public:
  GzipStream(UniqueFd fd, const LayerLimits& limits)
      : BoundedStream(limits), input_(std::move(fd)) {
    isal_inflate_init(&state_);
    state_.crc_flag = ISAL_GZIP;
  }

  Result<size_t> read(char* out, size_t capacity) override {
    if (done_)
      return size_t{0};
    state_.next_out = reinterpret_cast<uint8_t*>(out);
    state_.avail_out = static_cast<uint32_t>(std::min<size_t>(capacity, UINT32_MAX));
    const uint32_t room = state_.avail_out;
    while (state_.avail_out == room) {
      if (state_.block_state == ISAL_BLOCK_FINISH) {
        // One member ended (its CRC checked); another may follow.
        ASSIGN_OR_RETURN(auto more, input_.fill());
        if (!more) {
          done_ = true;
          break;
        }
        isal_inflate_reset(&state_);
        state_.crc_flag = ISAL_GZIP;
        started_ = false;
      }
      ASSIGN_OR_RETURN(auto more, input_.fill());
      if (!more) {
        if (started_)  // the input ended inside a member
          return makeError(ErrorCode::kInvalidArgument, "gzip layer is truncated");
        done_ = true;
        break;
      }
      started_ = true;
      state_.next_in = reinterpret_cast<uint8_t*>(const_cast<char*>(input_.data()));
      state_.avail_in = static_cast<uint32_t>(input_.available());
      int rc = isal_inflate(&state_);
      input_.consume(input_.available() - state_.avail_in);
      if (rc < 0) {
        return makeError(ErrorCode::kInvalidArgument,
                         "gzip layer is corrupt (igzip error " + std::to_string(rc) + ")");
      }
    }
    size_t n = room - state_.avail_out;
    RETURN_IF_ERROR(account(n));
    return n;
  }

 private:
  BlobInput input_;
  inflate_state state_{};
  bool done_ = false;
  bool started_ = false;  // input of the current member has been seen
};

class ZstdStream final : public BoundedStream {
 public:
  ZstdStream(UniqueFd fd, const LayerLimits& limits)
      : BoundedStream(limits), input_(std::move(fd)), ctx_(ZSTD_createDCtx()) {
    // A hostile frame may ask for a huge window: cap the memory it can make us allocate.
    if (ctx_ != nullptr) {
      ZSTD_DCtx_setParameter(ctx_, ZSTD_d_windowLogMax, limits.zstd_max_window_log);
    }
  }
  ~ZstdStream() override { ZSTD_freeDCtx(ctx_); }

  Result<size_t> read(char* out, size_t capacity) override {
    if (ctx_ == nullptr)
      return makeError(ErrorCode::kInternal, "zstd initialisation failed");
    ZSTD_outBuffer output{out, capacity, 0};
    while (output.pos == 0) {
      ASSIGN_OR_RETURN(auto more, input_.fill());
      if (!more) {
        if (frame_open_)
          return makeError(ErrorCode::kInvalidArgument, "zstd layer is truncated");
        break;
      }
      ZSTD_inBuffer input{input_.data(), input_.available(), 0};
      size_t rc = ZSTD_decompressStream(ctx_, &output, &input);
      input_.consume(input.pos);
      if (ZSTD_isError(rc)) {
        return makeError(ErrorCode::kInvalidArgument,
                         std::string("zstd layer is corrupt: ") + ZSTD_getErrorName(rc));
      }
      frame_open_ = rc != 0;
    }
    RETURN_IF_ERROR(account(output.pos));
    return output.pos;
  }

 private:
  BlobInput input_;
  ZSTD_DCtx* ctx_;
  bool frame_open_ = false;
};

Compression sniff(const unsigned char* head, size_t n) {
  if (n >= 3 && head[0] == 0x1f && head[1] == 0x8b && head[2] == 0x08)
    return Compression::kGzip;
  if (n >= 4 && head[0] == 0x28 && head[1] == 0xb5 && head[2] == 0x2f && head[3] == 0xfd) {
    return Compression::kZstd;
  }
  return Compression::kNone;
}

std::string_view name(Compression c) {
  switch (c) {
    case Compression::kGzip:
      return "gzip";
    case Compression::kZstd:
      return "zstd";
    case Compression::kNone:
      break;
  }
  return "uncompressed";
}

}  // namespace

Result<Compression> compressionOf(std::string_view media_type) {
  if (media_type.ends_with("+gzip") || media_type.ends_with(".tar.gzip"))
    return Compression::kGzip;
  if (media_type.ends_with("+zstd") || media_type.ends_with(".tar.zstd") ||
      media_type.ends_with(".tar.zst")) {
    return Compression::kZstd;
  }
  if (media_type.ends_with(".tar") || media_type.ends_with("v1.tar"))
    return Compression::kNone;
  return makeError(ErrorCode::kUnsupported,
                   "layer media type \"" + std::string(media_type) + "\" cannot be unpacked");
}

Result<std::unique_ptr<LayerStream>> openLayerStream(UniqueFd blob, std::string_view media_type,
                                                     const LayerLimits& limits) {
  ASSIGN_OR_RETURN(auto promised, compressionOf(media_type));
  std::array<unsigned char, 4> head{};
  ssize_t n = ::pread(blob.get(), head.data(), head.size(), 0);
  if (n < 0)
    return readError(errno);
  Compression actual = sniff(head.data(), static_cast<size_t>(n));
  // An empty blob is an empty layer whatever its type says.
  if (n > 0 && actual != promised) {
    return makeError(ErrorCode::kInvalidArgument, "layer media type \"" + std::string(media_type) +
                                                      "\" says " + std::string(name(promised)) +
                                                      " but the data is " +
                                                      std::string(name(actual)));
  }
  switch (promised) {
    case Compression::kGzip:
      if (n > 0)
        return std::unique_ptr<LayerStream>(new GzipStream(std::move(blob), limits));
      break;
    case Compression::kZstd:
      if (n > 0)
        return std::unique_ptr<LayerStream>(new ZstdStream(std::move(blob), limits));
      break;
    case Compression::kNone:
      break;
  }
  return std::unique_ptr<LayerStream>(new PlainStream(std::move(blob), limits));
}

std::string decompressorVersions() {
  return "ISA-L igzip " + std::to_string(ISAL_MAJOR_VERSION) + "." +
         std::to_string(ISAL_MINOR_VERSION) + "." + std::to_string(ISAL_PATCH_VERSION) +
         " (compiled), zstd " + ZSTD_versionString();
}

}  // namespace pullagent::puller
