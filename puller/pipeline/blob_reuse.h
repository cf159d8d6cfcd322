#pragma once

#include <optional>
#include <string_view>

#include "base/error.h"
#include "puller/store/provenance.h"

namespace pullagent::puller {

// How a pull proves that its own registry holds a blob this host stored from another
// repository of that registry (the agent config's "sharedBlobProof", `pull
// --shared-blob-proof`). Blobs stored from another registry are always fetched again.
enum class SharedBlobProof {
  // HEAD /v2/<repo>/blobs/<digest> with the pull's token: the registry says whether the blob is
  // linked into this repository (distribution and ACR check). One request, no bytes.
  kHead,
  // Strict: every blob not recorded for this very registry and repository is fetched again,
  // so the requests a registry sees never depend on what other tenants of the host hold.
  kFetch,
};

Result<SharedBlobProof> parseSharedBlobProof(std::string_view text);
std::string_view sharedBlobProofName(SharedBlobProof proof);

// What a pull must do before it may use a blob the host holds (its bytes in the store, or its
// layer unpacked into a snapshot).
enum class ReuseRule {
  kSameRepository,    // recorded for this registry and repository, whose credentials just
                      // served this pull's manifest: reused without a request
  kHeadInRepository,  // another repository of the same registry: reused once a HEAD with this
                      // pull's token answers 200 with the blob's size
  kFetchAgain,        // anything else (another registry, no record, a corrupt one, the strict
                      // setting): the bytes are downloaded again and verified against the digest
};

// The rule for a blob whose record is `record` (nullopt: none, or unreadable) in a pull from
// `source`.
ReuseRule reuseRule(const std::optional<ProvenanceRecord>& record, const BlobSource& source,
                    SharedBlobProof proof);
// "same repository", "HEAD in repository", "fetched again", for logs and errors.
std::string_view reuseRuleName(ReuseRule rule);

}  // namespace pullagent::puller
