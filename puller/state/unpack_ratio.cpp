#include "puller/state/unpack_ratio.h"

#include <algorithm>
#include <cmath>

#include <nlohmann/json.hpp>

#include "base/atomic_file.h"
#include "base/bounded_read.h"
#include "base/json_reader.h"

namespace pullagent::puller {
namespace {

constexpr size_t kMaxRatioRecordBytes = 4096;

}  // namespace

std::vector<double> UnpackRatio::read() const {
  std::vector<double> recent;
  auto text = readRegularFile(path_, kMaxRatioRecordBytes);
  if (!text)
    return recent;
  // A damaged record is no record: the default ratio until pulls teach it again.
  auto doc = parseJson(*text, "unpack ratio", ErrorCode::kProtocol, 4);
  if (!doc)
    return recent;
  auto values = JsonReader(*doc, "unpack ratio")["recent"].elements();
  if (!values)
    return recent;
  for (const auto& value : *values) {
    auto ratio = value.number();
    if (ratio && std::isfinite(*ratio))
      recent.push_back(std::clamp(*ratio, kMin, kMax));
  }
  if (recent.size() > kKept)
    recent.erase(recent.begin(), recent.end() - static_cast<std::ptrdiff_t>(kKept));
  return recent;
}

double UnpackRatio::ratio() const {
  std::vector<double> recent = read();
  if (recent.empty())
    return kDefault;
  std::sort(recent.begin(), recent.end());
  const size_t middle = recent.size() / 2;
  return recent.size() % 2 == 1 ? recent[middle] : (recent[middle - 1] + recent[middle]) / 2;
}

Status UnpackRatio::learn(int64_t compressed_bytes, int64_t unpacked_bytes) const {
  if (compressed_bytes <= 0 || unpacked_bytes <= 0)
    return {};
  std::vector<double> recent = read();
  recent.push_back(std::clamp(
      static_cast<double>(unpacked_bytes) / static_cast<double>(compressed_bytes), kMin, kMax));
  if (recent.size() > kKept)
    recent.erase(recent.begin());
  nlohmann::json values = nlohmann::json::array();
  for (const double ratio : recent)
    values.push_back(std::round(ratio * 1000) / 1000);
  return writeFileAtomic(path_, nlohmann::json{{"recent", values}}.dump() + "\n");
}

}  // namespace pullagent::puller
