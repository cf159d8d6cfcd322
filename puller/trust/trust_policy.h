#pragma once

#include <memory>
#include <optional>
#include <string>

#include "base/context.h"
#include "base/error.h"
#include "puller/oci/digest.h"
#include "puller/reference/reference.h"
#include "puller/registry/registry_client.h"
#include "puller/store/content_store.h"
#include "puller/trust/containers_policy.h"
#include "puller/trust/external_verifiers.h"
#include "puller/trust/notation_policy.h"
#include "puller/trust/signature_verifier.h"

namespace pullagent::puller {

// The signature policies a host applies to what it publishes: a containers-policy.json (cosign
// signatures), a Notation configuration (Notary Project signatures), containerd's external
// image verifiers, or any of them together, in which case an image must satisfy each.
// Immutable; a reload builds a new one.
class TrustPolicy {
 public:
  TrustPolicy(std::shared_ptr<const ContainersPolicy> containers,
              std::shared_ptr<const NotationPolicy> notation,
              std::optional<ExternalVerifierConfig> verifiers = std::nullopt);

  const ContainersPolicy* containers() const { return containers_.get(); }
  const NotationPolicy* notation() const { return notation_.get(); }
  const std::optional<ExternalVerifierConfig>& verifiers() const { return verifiers_; }
  // Of every file either policy read: a verdict taken under one hash holds until it changes.
  const Digest& hash() const { return hash_; }
  // What a kept verdict is keyed by: the hash, and with image verifiers what their directory
  // holds now (read at each use, as the verifiers are).
  std::string verdictKey() const;
  // "containers policy /etc/…/policy.json and notation trust policy /etc/…/trustpolicy.json"
  const std::string& document() const { return document_; }

  // What a verification ended in, for the caller's state and metrics.
  struct Report {
    bool refused = false;  // a policy refused (else an error is the registry failing to answer)
    // refused: the check that decided ("unsigned", "integrity", …); else what gave no verdict
    // ("external": a verifier that could not be run or finish; "": the registry)
    std::string check;
  };
  // Every policy's verdict, before any layer blob (see SignatureVerifier, NotationVerifier).
  // `report` (optional) says how it ended; `http` asks revocation services (Notation).
  Result<SignatureVerdict> verify(RegistryClient& registry, ContentStore& store,
                                  const ImageRef& ref, const SignedSubjects& subjects,
                                  const Context& ctx, Report* report,
                                  HttpClient* http = nullptr) const;

 private:
  std::shared_ptr<const ContainersPolicy> containers_;
  std::shared_ptr<const NotationPolicy> notation_;
  std::optional<ExternalVerifierConfig> verifiers_;
  Digest hash_;
  std::string document_;
};

}  // namespace pullagent::puller
