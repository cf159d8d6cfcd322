#pragma once

#include <cstdint>
#include <ctime>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

#include "puller/oci/digest.h"
#include "puller/reference/reference.h"
#include "puller/trust/trust_policy.h"

namespace pullagent::puller {

// The images a signature policy accepted in this process, by (policy hash, reference, digest,
// platform: an index's verdict holds for the platform whose manifest was checked):
// a tag poll or refresh that finds its tag where it was skips the pull only when the policy of
// now accepted that digest under that name (the identity rules read the name); a changed
// policy file (another hash) decides every image again. Refusals are not kept: a refused image
// is asked again at the next attempt (a signature may have been pushed since). An acceptance
// that holds only until a time (SignatureVerdict::holds_until: a Notary signature's expiry, its
// certificates' end, a revocation answer's age) is not one from then on. Thread-safe.
class VerdictCache {
 public:
  bool accepted(const TrustPolicy& policy, const ImageRef& ref, const Digest& digest,
                const std::string& platform, std::time_t now) const;
  void remember(const TrustPolicy& policy, const ImageRef& ref, const Digest& digest,
                const std::string& platform, std::optional<std::time_t> holds_until);

  // Every verification's end, by result ("accepted", "logged": a failed check the level only
  // logs, "refused", "error": the registry did not answer) and check ("none" when accepted),
  // until taken for the metrics (pullagent_signature_verifications_total).
  using Counts = std::map<std::pair<std::string, std::string>, int64_t>;
  void count(const std::string& result, const std::string& check);
  Counts takeCounts();

 private:
  static std::string key(const TrustPolicy& policy, const ImageRef& ref, const Digest& digest,
                         const std::string& platform);

  mutable std::mutex mutex_;
  std::map<std::string, std::optional<std::time_t>> accepted_;  // key -> holds until
  Counts counts_;
};

}  // namespace pullagent::puller
