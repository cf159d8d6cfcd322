#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "base/error.h"
#include "puller/oci/digest.h"
#include "puller/state/state_dir.h"

namespace pullagent::puller {

// An image the state dir keeps while space allows (a site's previous image, a stopped site's
// image), and may evict under pressure.
struct EvictionCandidate {
  Digest image;
  std::optional<std::chrono::system_clock::time_point> last_used;  // none: never / unreadable
  std::string kept_as;  // "previous image of site web", for the log
};

// The eviction order: least recently used first, an image without a readable record before
// all others, ties by digest. It depends only on what the state dir records, so a restarted
// service evicts in the same order.
void sortForEviction(std::vector<EvictionCandidate>& candidates);

struct EvictedItem {
  std::string reason;  // "unpacked-layer-blob" or "unused-image"
  std::string what;    // the blob's or the image's digest, and why it was kept
  int64_t bytes = 0;   // the disk it freed
};

struct EvictionReport {
  int64_t freed = 0;
  std::vector<EvictedItem> items;
};

struct EvictionPlan {
  int64_t bytes = 0;                          // to free; eviction stops as soon as it has
  std::set<Digest> protect;                   // never evicted: published, warm
  std::vector<EvictionCandidate> candidates;  // in eviction order (sortForEviction)
  bool discard_unpacked_layers = false;       // the agent's setting, for the gc in between
  std::set<Digest> keep;  // every image to keep besides protect and the candidates not reached
};

// Frees at least `plan.bytes`, one item at a time, stopping at the first that reaches it (so
// never more than one item past it): first the layer blobs of kept images whose snapshots are
// made (their pulls reuse the snapshot), largest first; then the candidates in order, each
// followed by a collection that removes what only it used. What is never touched: the protected
// images and everything they use; a candidate not yet reached. The caller holds the state lock
// exclusively. Returns what it freed, which may be less than asked when nothing is left.
Result<EvictionReport> evict(const StateDir& state, const EvictionPlan& plan);

}  // namespace pullagent::puller
