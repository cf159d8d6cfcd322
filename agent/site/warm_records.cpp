#include "agent/site/warm_records.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "agent/site/site_state.h"
#include "base/atomic_file.h"
#include "base/bounded_read.h"
#include "puller/oci/digest.h"

namespace pullagent::agent {
namespace {

constexpr size_t kMaxWarmRecordsBytes = 1 << 20;

}  // namespace

WarmRecords readWarmRecords(const puller::StateDir& state) {
  WarmRecords records;
  auto text = readRegularFile(state.warm(), kMaxWarmRecordsBytes);
  if (!text)
    return records;
  auto doc = nlohmann::json::parse(*text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object() || !doc.contains("images") ||
      !doc["images"].is_array()) {
    return records;
  }
  for (const auto& entry : doc["images"]) {
    if (!entry.is_object())
      continue;
    auto string = [&](const char* key) {
      return entry.contains(key) && entry[key].is_string() ? entry[key].get<std::string>() : "";
    };
    WarmRecord record{string("digest"), string("resolvedDigest"), {}};
    const std::string image = string("image");
    // Only digests: a record's digest names a directory under images/.
    if (image.empty() || !puller::Digest::parse(record.digest) ||
        !puller::Digest::parse(record.resolved_digest)) {
      continue;
    }
    // Bounded, so that the conversion to the clock's nanoseconds cannot overflow.
    constexpr int64_t kMaxMs = int64_t{1} << 52;
    const auto ms =
        entry.contains("checkedAtUnixMs") && entry["checkedAtUnixMs"].is_number_integer()
            ? std::clamp<int64_t>(entry["checkedAtUnixMs"].get<int64_t>(), 0, kMaxMs)
            : 0;
    record.checked_at = std::chrono::system_clock::time_point(std::chrono::milliseconds(ms));
    records[image] = std::move(record);
  }
  return records;
}

Status writeWarmRecords(const puller::StateDir& state, const WarmRecords& records) {
  nlohmann::json images = nlohmann::json::array();
  for (const auto& [image, record] : records) {
    images.push_back({{"image", image},
                      {"digest", record.digest},
                      {"resolvedDigest", record.resolved_digest},
                      {"checkedAt", formatUtc(record.checked_at)},
                      {"checkedAtUnixMs", std::chrono::duration_cast<std::chrono::milliseconds>(
                                              record.checked_at.time_since_epoch())
                                              .count()}});
  }
  return writeFileAtomic(state.warm(), nlohmann::json{{"images", images}}.dump(2) + "\n");
}

}  // namespace pullagent::agent
