#include "puller/pipeline/pull_demand.h"

#include "puller/snapshot/chain_id.h"

namespace pullagent::puller {

PullDemand predictDemand(const Descriptor& manifest, const Descriptor& config,
                         const std::vector<Descriptor>& layers, const ContentStore& store,
                         const ProvenanceStore* provenance, const SnapshotStore* snapshots) {
  PullDemand demand;
  demand.manifest = manifest.digest;
  demand.layers = layers.size();
  if (!store.contains(config.digest, config.size))
    demand.download_bytes += config.size;
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
    if (unpacked)
      continue;
    ++demand.layers_to_unpack;
    demand.unpack_source_bytes += layer.size;
    if (!store.contains(layer.digest, layer.size)) {
      ++demand.layers_to_download;
      demand.download_bytes += layer.size;
    }
  }
  return demand;
}

}  // namespace pullagent::puller
