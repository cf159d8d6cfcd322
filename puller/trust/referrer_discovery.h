#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/context.h"
#include "base/error.h"
#include "puller/oci/manifest.h"
#include "puller/registry/registry_client.h"
#include "puller/trust/signature_reasons.h"

namespace pullagent::puller {

// One artifact attached to a subject as OCI 1.1 attaches it: a manifest whose subject is the
// index or manifest pulled, with one layer (a Notary envelope, a Sigstore bundle).
struct AttachedArtifact {
  Descriptor subject;  // the index or manifest it refers to
  Digest manifest;     // the artifact's own manifest
  Descriptor layer;    // its one layer
};

// What to look for: the artifact type, how large its layer may be, and its name in reasons
// ("Notary signature", "Sigstore bundle").
struct ArtifactQuery {
  std::string_view artifact_type;
  int64_t max_layer_size = 0;
  std::string_view kind;
};

// The artifacts of `query.artifact_type` that refer to `subject`: through the referrers API, or
// the tag schema's "sha256-<hex>" index when the registry has none (Debian's docker-registry
// 2.8). At most kMaxReferrers are read, each manifest checked (its type, its subject, one
// layer of at most query.max_layer_size bytes); what is skipped is said in `skipped`. An error
// only when the registry could not say (a 404 for the tag is "none").
Result<std::vector<AttachedArtifact>> discoverReferrers(RegistryClient& registry,
                                                        const Descriptor& subject,
                                                        const ArtifactQuery& query,
                                                        const Context& ctx,
                                                        SignatureReasons& skipped);

}  // namespace pullagent::puller
