#include "agent/site/warm_records.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "agent/site/site_state.h"
#include "base/atomic_file.h"
#include "base/bounded_read.h"
#include "base/json_reader.h"
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
  // A damaged file or entry is skipped: the warm image is pulled again, nothing worse.
  auto doc = parseJson(*text, "warm records", ErrorCode::kProtocol, 8);
  if (!doc)
    return records;
  auto entries = JsonReader(*doc, "warm records")["images"].elements();
  if (!entries)
    return records;
  for (const auto& entry : *entries) {
    auto string = [&](const char* key) {
      auto value = entry[key].string();
      return value ? *value : std::string();
    };
    WarmRecord record{string("digest"), string("resolvedDigest"), {}};
    const std::string image = string("image");
    // Only digests: a record's digest names a directory under images/.
    if (image.empty() || !puller::Digest::parse(record.digest) ||
        !puller::Digest::parse(record.resolved_digest)) {
      continue;
    }
    // At most 2^43 ms (about 278 years): the clock's nanoseconds cannot overflow.
    auto checked = entry["checkedAtUnixMs"].integer(0, int64_t{1} << 43);
    const int64_t ms = checked ? *checked : 0;
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
