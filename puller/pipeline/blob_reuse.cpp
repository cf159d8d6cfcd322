#include "puller/pipeline/blob_reuse.h"

#include <string>

namespace pullagent::puller {

Result<SharedBlobProof> parseSharedBlobProof(std::string_view text) {
  if (text == "head")
    return SharedBlobProof::kHead;
  if (text == "fetch")
    return SharedBlobProof::kFetch;
  return makeError(ErrorCode::kInvalidArgument,
                   "shared blob proof \"" + std::string(text) + "\" is neither head nor fetch");
}

std::string_view sharedBlobProofName(SharedBlobProof proof) {
  return proof == SharedBlobProof::kHead ? "head" : "fetch";
}

ReuseRule reuseRule(const std::optional<ProvenanceRecord>& record, const BlobSource& source,
                    SharedBlobProof proof) {
  if (!record)
    return ReuseRule::kFetchAgain;
  if (record->servedBy(source))
    return ReuseRule::kSameRepository;
  if (proof == SharedBlobProof::kHead && record->servedByRegistry(source.registry))
    return ReuseRule::kHeadInRepository;
  return ReuseRule::kFetchAgain;
}

std::string_view reuseRuleName(ReuseRule rule) {
  switch (rule) {
    case ReuseRule::kSameRepository:
      return "same repository";
    case ReuseRule::kHeadInRepository:
      return "HEAD in repository";
    case ReuseRule::kFetchAgain:
      return "fetched again";
  }
  return "unknown";
}

}  // namespace pullagent::puller
