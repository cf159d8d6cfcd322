#include "puller/pipeline/pull_demand.h"

#include <algorithm>
#include <limits>
#include <set>

#include "puller/snapshot/chain_id.h"

namespace pullagent::puller {
namespace {

// Manifest sizes are the registry's word: a hostile one may claim anything up to INT64_MAX.
int64_t saturatingAdd(int64_t total, int64_t size) {
  const int64_t bounded = std::max<int64_t>(size, 0);
  return total > std::numeric_limits<int64_t>::max() - bounded ? std::numeric_limits<int64_t>::max()
                                                               : total + bounded;
}

}  // namespace

PullDemand predictDemand(const Descriptor& manifest, const Descriptor& config,
                         const std::vector<Descriptor>& layers, const ContentStore& store,
                         const ProvenanceStore* provenance, const SnapshotStore* snapshots) {
  PullDemand demand;
  demand.manifest = manifest.digest;
  demand.layers = layers.size();
  if (!store.contains(config.digest, config.size))
    demand.download_bytes = saturatingAdd(demand.download_bytes, config.size);
  std::set<Digest> counted;      // a layer listed twice is fetched and unpacked once
  std::vector<Digest> diff_ids;  // of the layers from the bottom, while every one is known
  bool chain_known = snapshots != nullptr && provenance != nullptr;
  for (const auto& layer : layers) {
    bool unpacked = false;
    if (chain_known) {
      const auto record = provenance->read(layer.digest);
      if (record && record->diff_id) {
        diff_ids.push_back(*record->diff_id);
        unpacked = snapshots->has(chainIds(diff_ids).back());
      } else {
        chain_known = false;
      }
    }
    if (unpacked || !counted.insert(layer.digest).second)
      continue;
    ++demand.layers_to_unpack;
    demand.unpack_source_bytes = saturatingAdd(demand.unpack_source_bytes, layer.size);
    if (!store.contains(layer.digest, layer.size)) {
      ++demand.layers_to_download;
      demand.download_bytes = saturatingAdd(demand.download_bytes, layer.size);
    }
  }
  return demand;
}

}  // namespace pullagent::puller
