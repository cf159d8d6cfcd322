#include "agent/daemon/disk_keeper.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>

#include "agent/common/progress.h"
#include "base/bounded_read.h"
#include "puller/oci/manifest.h"
#include "puller/snapshot/snapshot_store.h"
#include "puller/state/eviction.h"
#include "puller/state/garbage_collector.h"
#include "puller/state/last_use.h"
#include "puller/state/published_image.h"
#include "puller/state/unpack_ratio.h"
#include "puller/store/content_store.h"

namespace pullagent::agent {
namespace {

std::set<puller::Digest> digestsOf(const std::vector<HeldImage>& held, bool in_use) {
  std::set<puller::Digest> digests;
  for (const auto& image : held) {
    if (image.in_use != in_use)
      continue;
    if (auto digest = puller::Digest::parse(image.digest))
      digests.insert(*digest);
  }
  return digests;
}

}  // namespace

std::shared_ptr<DiskAdmission> DiskKeeper::configure(const AgentConfig& agent) {
  if (agent.state_dir != state_)
    in_use_.reset();  // another state dir: its images' use is recorded afresh
  state_ = agent.state_dir;
  marks_ = agent.disk_watermarks;
  discard_unpacked_layers_ = agent.discard_unpacked_layers;
  interval_ = agent.disk_check_interval;
  next_check_ = {};  // checked at the next turn, with the new marks
  admission_ = std::make_shared<DiskAdmission>(state_, marks_, meter_,
                                               [this] { metrics_.admissionRefused(); });
  return admission_;
}

void DiskKeeper::noteUse(const std::vector<HeldImage>& held,
                         std::chrono::system_clock::time_point now) {
  std::set<std::string> in_use;
  for (const auto& image : held) {
    if (image.in_use)
      in_use.insert(image.digest);
  }
  if (in_use_ && *in_use_ == in_use)
    return;
  std::set<std::string> changed;
  const std::set<std::string> before = in_use_.value_or(std::set<std::string>{});
  std::set_symmetric_difference(in_use.begin(), in_use.end(), before.begin(), before.end(),
                                std::inserter(changed, changed.end()));
  const puller::LastUse last_use(state_);
  for (const auto& text : changed) {
    auto digest = puller::Digest::parse(text);
    if (!digest)
      continue;
    const bool first_use = in_use.count(text) != 0 && !last_use.read(*digest);
    if (auto status = last_use.touch(*digest, now); !status)
      spdlog::warn("cannot record the last use of {}: {}", text, status.error().describe());
    if (first_use)
      learnRatio(*digest);
  }
  in_use_ = std::move(in_use);
}

void DiskKeeper::learnRatio(const puller::Digest& image) {
  const auto dir = state_.image(image);
  auto rootfs = puller::publishedRootfs(dir);
  auto text = readRegularFile(puller::ContentStore::blobsDir(state_.content()) / image.hex(),
                              static_cast<size_t>(puller::kMaxManifestSize));
  if (!rootfs || !text)
    return;
  auto parsed = puller::parseManifest(*text, "");
  const auto* manifest = parsed ? std::get_if<puller::ImageManifest>(&parsed.value()) : nullptr;
  if (manifest == nullptr)
    return;
  int64_t compressed = 0;
  std::set<puller::Digest> layers;  // a layer listed twice is unpacked once per chain: once here
  for (const auto& layer : manifest->layers) {
    if (layers.insert(layer.digest).second)
      compressed += layer.size;
  }
  int64_t unpacked = 0;
  if (rootfs->flat) {
    unpacked = meter_.treeBytes(dir);
  } else {
    const puller::SnapshotStore snapshots(state_.snapshots());
    for (const auto& chain : std::set<puller::Digest>(rootfs->chain.begin(), rootfs->chain.end()))
      unpacked += meter_.treeBytes(snapshots.dir(chain));
  }
  if (auto status = puller::UnpackRatio(state_).learn(compressed, unpacked); !status)
    spdlog::warn("cannot record the unpack ratio: {}", status.error().describe());
}

bool DiskKeeper::due(std::chrono::steady_clock::time_point now) {
  return now >= next_check_ || (admission_ && admission_->waiting());
}

bool DiskKeeper::needsTurn(std::chrono::steady_clock::time_point now) {
  return (above_high_ && now >= next_check_) || (admission_ && admission_->waiting());
}

bool DiskKeeper::housekeep(const std::vector<HeldImage>& held, bool collect,
                           std::chrono::steady_clock::time_point now) {
  if (collect) {
    std::set<puller::Digest> keep = digestsOf(held, true);
    keep.merge(digestsOf(held, false));
    auto report = puller::collectGarbage(state_, keep, false, discard_unpacked_layers_);
    if (report) {
      metrics_.garbageCollected(report->images_removed, report->blobs_removed, report->bytes_freed);
      metrics_.snapshotsCollected(report->snapshots_removed);
      metrics_.snapshotsOnDisk(report->snapshots_kept, report->snapshot_bytes);
      spdlog::info(
          "garbage collection: removed {} images, {} layer snapshots and {} blobs, freed {}",
          report->images_removed, report->snapshots_removed, report->blobs_removed,
          humanBytes(report->bytes_freed));
      meter_.prune();
    } else {
      spdlog::warn("garbage collection failed: {}", report.error().describe());
    }
  }
  const int64_t wanted = admission_ ? admission_->takeWanted() : 0;
  const bool room_made = check(held, wanted);
  next_check_ = now + interval_;
  // Waiting pulls are tried again only when there is room for them now: else they would ask
  // again at once, and again.
  return wanted > 0 && room_made;
}

bool DiskKeeper::check(const std::vector<HeldImage>& held, int64_t wanted) {
  auto space = puller::diskSpaceOf(state_.root());
  if (!space) {
    spdlog::warn("disk check: {}", space.error().describe());
    return false;
  }
  int64_t state_bytes = meter_.stateBytes(state_);
  const std::set<puller::Digest> in_use = digestsOf(held, true);
  std::vector<puller::EvictionCandidate> candidates;
  const puller::LastUse last_use(state_);
  for (const auto& image : held) {
    auto digest = puller::Digest::parse(image.digest);
    // Only what is there: a site's previous image may have gone in an earlier eviction.
    if (!image.in_use && digest && in_use.count(*digest) == 0 &&
        puller::publishedRootfs(state_.image(*digest)).ok()) {
      candidates.push_back({*digest, last_use.read(*digest), image.held_as});
    }
  }
  puller::sortForEviction(candidates);

  const int64_t relieve = puller::bytesToRelieve(*space, state_bytes, marks_);
  // A waiting pull's need weighed against the disk as it is now, no pull running.
  const int64_t shortfall =
      wanted > 0 ? std::max<int64_t>(0, wanted - puller::roomBelowHigh(*space, state_bytes, marks_))
                 : 0;
  if (const int64_t bytes = std::max(relieve, shortfall); bytes > 0) {
    spdlog::info("disk: {:.1f}% used, the state dir holds {}: evicting {} ({})",
                 space->usedPercent(), humanBytes(state_bytes), humanBytes(bytes),
                 relieve >= shortfall ? "above the high watermark" : "a pull waits for space");
    std::set<puller::Digest> keep = in_use;  // every held image not evicted stays
    keep.merge(digestsOf(held, false));
    puller::EvictionPlan plan{bytes, in_use, candidates, discard_unpacked_layers_, keep};
    auto report = puller::evict(state_, plan);
    if (report) {
      for (const auto& item : report->items)
        metrics_.evicted(item.reason, item.bytes);
      const std::string said =
          std::to_string(report->items.size()) + " items, " + humanBytes(report->freed) + " freed";
      if (report->freed < bytes)
        spdlog::warn("disk: evicted {}; nothing else may go (published images stay)", said);
      else
        spdlog::info("disk: evicted {}", said);
    } else {
      spdlog::warn("disk: eviction failed: {}", report.error().describe());
    }
    meter_.prune();
    if (auto after = puller::diskSpaceOf(state_.root()))
      space = after;
    state_bytes = meter_.stateBytes(state_);
    // What remains a candidate (evicted ones are gone from the state dir).
    std::erase_if(candidates, [&](const puller::EvictionCandidate& candidate) {
      return !puller::publishedRootfs(state_.image(candidate.image)).ok();
    });
  }
  std::set<puller::Digest> remaining;
  for (const auto& candidate : candidates)
    remaining.insert(candidate.image);
  auto measured = meter_.evictableBytes(state_, in_use, remaining);
  if (!measured)
    spdlog::warn("disk check: {}", measured.error().describe());
  const int64_t evictable = measured ? *measured : 0;
  if (admission_)
    admission_->setEvictable(evictable);
  // Only worth a turn when something may go.
  above_high_ = puller::bytesToRelieve(*space, state_bytes, marks_) > 0 && evictable > 0;
  metrics_.diskBytes("used", space->used);
  metrics_.diskBytes("available", space->available);
  metrics_.diskBytes("state", state_bytes);
  metrics_.diskBytes("evictable", evictable);
  return wanted <= puller::roomBelowHigh(*space, state_bytes, marks_) ||
         (wanted <= puller::roomLeft(*space, state_bytes, marks_) && evictable == 0);
}

}  // namespace pullagent::agent
