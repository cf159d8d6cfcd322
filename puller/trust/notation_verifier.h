#pragma once

#include <ctime>
#include <optional>
#include <string>
#include <vector>

#include "base/context.h"
#include "base/error.h"
#include "puller/reference/reference.h"
#include "puller/registry/registry_client.h"
#include "puller/store/content_store.h"
#include "puller/trust/notation_policy.h"
#include "puller/trust/signature_reasons.h"
#include "puller/trust/signature_verifier.h"

namespace pullagent::puller {

// Decides whether an image may be published under a Notation trust policy, before any of its
// layers is fetched, as `notation verify` would: the statement whose registryScopes cover the
// image's repository (else "*") sets the level; level skip reads nothing; otherwise one Notary
// Project signature of the index or of the platform manifest must pass every check the level
// enforces (integrity always; authenticity, authenticTimestamp, expiry, revocation as the level
// and its overrides say; a check set to log is logged and does not refuse).
//
// Signatures are found through the referrers API, or through the tag schema's
// "sha256-<hex>" index when the registry has none, filtered by the artifact type
// application/vnd.cncf.notary.signature. At most kMaxReferrers per subject are read, each
// envelope at most notation::kMaxEnvelopeSize bytes, always from the pull's registry with its
// credentials and deadline. Envelopes: JWS and COSE.
// RFC 3161 timestamps count with a tsa trust store; revocation is asked by OCSP and CRL
// (checkRevocation) of the services a trusted chain names.
//
// An image no statement covers is refused, as Notation does. Under level audit an image
// without any signature is published with a warning (audit is how a host adopts signing before
// every image is signed); a signature that is present must still pass integrity.
class NotationVerifier {
 public:
  explicit NotationVerifier(const NotationPolicy& policy) : policy_(policy) {}

  // `http` (optional) asks the OCSP responders and CRLs a trusted chain names.
  Result<SignatureVerdict> verify(RegistryClient& registry, ContentStore& store,
                                  const ImageRef& ref, const SignedSubjects& subjects,
                                  const Context& ctx, HttpClient* http = nullptr);
  bool refused() const { return refused_; }
  // After a refusal: the check that decided it ("scope", "unsigned", "envelope", or the
  // first signature's failed check: "integrity", "authenticity", …), for the metrics.
  const std::string& refusedCheck() const { return refused_check_; }

 private:
  struct Candidate {
    Descriptor subject;         // the index or manifest it signs
    Digest signature_manifest;  // the signature's manifest
    Descriptor envelope;        // its one layer
  };
  Status collect(RegistryClient& registry, const SignedSubjects& subjects, const Context& ctx);
  Status collectFor(RegistryClient& registry, const Descriptor& subject, const Context& ctx);

  const NotationPolicy& policy_;
  bool refused_ = false;
  std::string refused_check_;
  std::vector<Candidate> candidates_;
  SignatureReasons skipped_;
};

}  // namespace pullagent::puller
