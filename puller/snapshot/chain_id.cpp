#include "puller/snapshot/chain_id.h"

#include "puller/oci/sha256.h"

namespace pullagent::puller {

std::vector<Digest> chainIds(const std::vector<Digest>& diff_ids) {
  std::vector<Digest> chain;
  chain.reserve(diff_ids.size());
  for (const auto& diff_id : diff_ids) {
    chain.push_back(chain.empty() ? diff_id : Sha256::of(chain.back().str() + " " + diff_id.str()));
  }
  return chain;
}

}  // namespace pullagent::puller
