#include "puller/unpack/layer_stream.h"

#include <zlib.h>
#include <zstd.h>

#include <array>
#include <cerrno>
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
    auto more = input_.fill();
    if (!more)
      return more.error();
    if (!*more)
      return size_t{0};
    size_t n = std::min(capacity, input_.available());
    std::memcpy(out, input_.data(), n);
    input_.consume(n);
    if (auto status = account(n); !status)
      return status.error();
    return n;
  }

 private:
  BlobInput input_;
};

// gzip (RFC 1952), several members in a row allowed, as gzip -d accepts.
class GzipStream final : public BoundedStream {
 public:
  GzipStream(UniqueFd fd, const LayerLimits& limits)
      : BoundedStream(limits), input_(std::move(fd)) {
    std::memset(&z_, 0, sizeof z_);
    ok_ = inflateInit2(&z_, 15 + 16) == Z_OK;
  }
  ~GzipStream() override {
    if (ok_)
      inflateEnd(&z_);
  }

  Result<size_t> read(char* out, size_t capacity) override {
    if (!ok_)
      return makeError(ErrorCode::kInternal, "zlib initialisation failed");
    if (done_)
      return size_t{0};
    z_.next_out = reinterpret_cast<Bytef*>(out);
    z_.avail_out = static_cast<uInt>(capacity);
    while (z_.avail_out == capacity) {
      auto more = input_.fill();
      if (!more)
        return more.error();
      if (!*more) {
        if (member_started_) {
          return makeError(ErrorCode::kInvalidArgument, "gzip layer is truncated");
        }
        done_ = true;
        break;
      }
      z_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(input_.data()));
      z_.avail_in = static_cast<uInt>(input_.available());
      member_started_ = true;
      int rc = inflate(&z_, Z_NO_FLUSH);
      input_.consume(input_.available() - z_.avail_in);
      if (rc == Z_STREAM_END) {
        member_started_ = false;
        inflateReset(&z_);
        continue;
      }
      if (rc != Z_OK && rc != Z_BUF_ERROR) {
        return makeError(ErrorCode::kInvalidArgument, std::string("gzip layer is corrupt: ") +
                                                          (z_.msg ? z_.msg : "inflate error"));
      }
    }
    size_t n = capacity - z_.avail_out;
    if (auto status = account(n); !status)
      return status.error();
    return n;
  }

 private:
  BlobInput input_;
  z_stream z_;
  bool ok_ = false;
  bool done_ = false;
  bool member_started_ = false;
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
      auto more = input_.fill();
      if (!more)
        return more.error();
      if (!*more) {
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
    if (auto status = account(output.pos); !status)
      return status.error();
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
  auto promised = compressionOf(media_type);
  if (!promised)
    return promised.error();
  std::array<unsigned char, 4> head{};
  ssize_t n = ::pread(blob.get(), head.data(), head.size(), 0);
  if (n < 0)
    return readError(errno);
  Compression actual = sniff(head.data(), static_cast<size_t>(n));
  // An empty blob is an empty layer whatever its type says.
  if (n > 0 && actual != *promised) {
    return makeError(ErrorCode::kInvalidArgument, "layer media type \"" + std::string(media_type) +
                                                      "\" says " + std::string(name(*promised)) +
                                                      " but the data is " +
                                                      std::string(name(actual)));
  }
  switch (*promised) {
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

}  // namespace pullagent::puller
