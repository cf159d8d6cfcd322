#include "puller/registry/blob_ranges.h"

#include <algorithm>
#include <charconv>

#include "base/redact.h"

namespace pullagent::puller {

std::string BlobPart::rangeHeader() const {
  return "bytes=" + std::to_string(next()) + "-" + std::to_string(end - 1);
}

BlobParts::BlobParts(int64_t from, int64_t size, const RangeSettings& settings) : size_(size) {
  const int64_t rest = size - from;
  const int64_t min_part = std::max<int64_t>(settings.min_part, 1);
  const int64_t count = std::clamp<int64_t>(rest / min_part, 1, std::max(settings.connections, 1));
  // Equal parts, the remainder spread one byte each over the first ones.
  const int64_t base = rest / count;
  int64_t extra = rest % count;
  int64_t at = from;
  for (int64_t i = 0; i < count; ++i) {
    const int64_t length = base + (extra > 0 ? 1 : 0);
    extra = std::max<int64_t>(extra - 1, 0);
    parts_.push_back(BlobPart{at, at + length, 0});
    at += length;
  }
}

void BlobParts::collapse(size_t index) {
  parts_.at(index).end = size_;
  parts_.resize(index + 1);
}

int64_t BlobParts::contiguousEnd() const {
  for (const auto& part : parts_) {
    if (!part.complete())
      return part.next();
  }
  return size_;
}

int64_t BlobParts::received() const {
  int64_t total = parts_.front().begin;
  for (const auto& part : parts_)
    total += part.received;
  return total;
}

Result<int64_t> checkPartRange(const std::optional<std::string>& header, int64_t first,
                               int64_t last, int64_t size) {
  if (!header)
    return makeError(ErrorCode::kProtocol, "206 answer without Content-Range");
  std::string_view value = *header;
  if (!value.starts_with("bytes "))
    return makeError(ErrorCode::kProtocol, "unexpected Content-Range " + safeQuoted(*header, 100));
  value.remove_prefix(6);
  const auto dash = value.find('-');
  const auto slash = value.find('/');
  if (dash == std::string_view::npos || slash == std::string_view::npos || slash < dash)
    return makeError(ErrorCode::kProtocol, "malformed Content-Range " + safeQuoted(*header, 100));
  auto number = [](std::string_view text, int64_t& out) {
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    return ec == std::errc() && ptr == text.data() + text.size();
  };
  int64_t start = -1;
  int64_t end = -1;
  int64_t total = -1;
  const auto total_text = value.substr(slash + 1);
  if (!number(value.substr(0, dash), start) ||
      !number(value.substr(dash + 1, slash - dash - 1), end) ||
      (total_text != "*" && !number(total_text, total))) {
    return makeError(ErrorCode::kProtocol, "malformed Content-Range " + safeQuoted(*header, 100));
  }
  if (start != first || end < start || end > last || end >= size || (total >= 0 && total != size))
    return makeError(ErrorCode::kProtocol, "Content-Range " + safeQuoted(*header, 100) +
                                               " does not match the " + "request for bytes " +
                                               std::to_string(first) + "-" + std::to_string(last) +
                                               " of a " + std::to_string(size) + "-byte blob");
  return end;
}

}  // namespace pullagent::puller
