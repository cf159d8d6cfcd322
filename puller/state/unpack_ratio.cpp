#include "puller/state/unpack_ratio.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "base/atomic_file.h"
#include "base/bounded_read.h"

namespace pullagent::puller {
namespace {

constexpr size_t kMaxRatioRecordBytes = 1024;
constexpr int64_t kHalveAbove = int64_t{1} << 40;

}  // namespace

UnpackRatio::Totals UnpackRatio::read() const {
  auto text = readRegularFile(path_, kMaxRatioRecordBytes);
  if (!text)
    return {};
  auto doc = nlohmann::json::parse(*text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object())
    return {};
  auto number = [&](const char* key) -> int64_t {
    return doc.contains(key) && doc[key].is_number_integer() ? doc[key].get<int64_t>() : 0;
  };
  Totals totals{number("compressedBytes"), number("unpackedBytes")};
  if (totals.compressed <= 0 || totals.unpacked <= 0)
    return {};
  return totals;
}

double UnpackRatio::ratio() const {
  const Totals totals = read();
  if (totals.compressed <= 0)
    return kDefault;
  return std::clamp(static_cast<double>(totals.unpacked) / static_cast<double>(totals.compressed),
                    kMin, kMax);
}

Status UnpackRatio::learn(int64_t compressed_bytes, int64_t unpacked_bytes) const {
  if (compressed_bytes <= 0 || unpacked_bytes <= 0)
    return {};
  Totals totals = read();
  totals.compressed += compressed_bytes;
  totals.unpacked += unpacked_bytes;
  while (totals.compressed > kHalveAbove || totals.unpacked > kHalveAbove) {
    totals.compressed /= 2;
    totals.unpacked /= 2;
  }
  return writeFileAtomic(path_, nlohmann::json{{"compressedBytes", totals.compressed},
                                               {"unpackedBytes", totals.unpacked}}
                                        .dump() +
                                    "\n");
}

}  // namespace pullagent::puller
