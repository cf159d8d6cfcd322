#pragma once

#include <ctime>
#include <optional>
#include <string>
#include <vector>

#include "base/context.h"
#include "base/error.h"
#include "puller/oci/manifest.h"
#include "puller/reference/reference.h"
#include "puller/registry/registry_client.h"
#include "puller/store/content_store.h"
#include "puller/trust/containers_policy.h"
#include "puller/trust/signature_reasons.h"

namespace pullagent::puller {

// What a pull resolved before any layer blob: the index it came through (if any) and the
// manifest it will unpack. A signature over either stands for the image (cosign signs what it
// is given: a multi-platform tag's index, or one platform's manifest).
struct SignedSubjects {
  std::optional<Descriptor> index;
  Descriptor manifest;
};

struct SignatureVerdict {
  std::string scope;    // the policy scope that decided
  std::string summary;  // "insecureAcceptAnything", "cosign signature sha256:… by ECDSA P-256"
  // The checks that failed and were only logged (Notation's levels): published all the same.
  std::vector<std::string> logged_checks;
  // When the acceptance stops holding by the clock alone (a Notary signature's expiry, its
  // certificates' end, a revocation answer's age: NotaryOutcome::holds_until); none: until the
  // policy or the image changes.
  std::optional<std::time_t> holds_until;
};

// Decides whether an image may be published under a containers-policy.json, before any of its
// layers is fetched. Every requirement of the image's scope must hold: reject refuses,
// insecureAcceptAnything accepts, sigstoreSigned needs one cosign signature that verifies with
// one of its keys, whose payload names the index's or the manifest's digest and whose identity
// the signedIdentity rule admits.
//
// Signatures are found as cosign attaches them: under the tag "sha256-<hex>.sig" of the index
// and of the manifest (an image manifest with one simple-signing layer per signature, its
// signature in the layer's annotation), and, when none of those satisfies a requirement, as
// cosign v3 does, Sigstore bundles among the subjects' OCI 1.1 referrers (a DSSE envelope over
// an in-toto statement naming the digest only: checkUnnamedIdentity admits it for an image
// pulled by digest). What the
// registry answers is hostile input: the newest cosign::kMaxSignatures signatures of each subject
// and 64 KiB per payload are read, the pull's deadline and credentials apply, a payload's bytes are
// checked against their digest like any blob, and the error text is bounded. Only a requirement
// that needs signatures costs requests (one manifest GET per subject, one blob GET per signature
// read; a payload is always asked of the pull's registry, never taken from the store unasked).
//
// A refusal is kUntrusted and names the policy file, the scope, each signature's digest with
// the check it failed (integrity, identity, digest), and what to fix.
class SignatureVerifier {
 public:
  explicit SignatureVerifier(const ContainersPolicy& policy) : policy_(policy) {}

  Result<SignatureVerdict> verify(RegistryClient& registry, ContentStore& store,
                                  const ImageRef& ref, const SignedSubjects& subjects,
                                  const Context& ctx);
  // After verify failed: whether the policy refused the image (else the registry could not be
  // asked, and there is no verdict).
  bool refused() const { return refused_; }
  // After a refusal: the check that decided it ("reject", "unsupported", "unsigned", "payload",
  // "integrity", "digest", "identity", "bundle"), for the metrics.
  const std::string& refusedCheck() const { return refused_check_; }

 private:
  struct Candidate {
    Digest subject;             // the index or manifest it signs
    Digest signature_manifest;  // the .sig manifest, or the bundle's referrer manifest
    Descriptor payload;         // the simple-signing layer, or the bundle
    std::string signature;      // decoded from its annotation (none in a bundle)
    bool bundle = false;        // a Sigstore bundle (cosign v3)
  };
  // The cosign signatures attached to the subjects; errors other than "no such tag" end the
  // pull (a registry that fails to say whether an image is signed does not get it published).
  Status collect(RegistryClient& registry, const SignedSubjects& subjects, const Context& ctx);
  // The Sigstore bundles among the subjects' referrers (asked only when no legacy signature
  // satisfied a requirement, so that a legacy-signed pull costs what it did).
  Status collectBundles(RegistryClient& registry, const SignedSubjects& subjects,
                        const Context& ctx);
  Result<std::string> payloadOf(RegistryClient& registry, ContentStore& store,
                                const Candidate& candidate, const Context& ctx);
  // One signature against a requirement: the text that accepts the image, or the check that
  // failed and why.
  struct Judgement {
    bool accepted = false;
    std::string check;
    std::string text;
  };
  Judgement judge(const std::string& payload, const ImageRef& ref,
                  const PolicyRequirement& requirement, const Candidate& candidate);
  // What accepted the image, or why each signature failed; an error only when the registry
  // could not be asked.
  struct Decision {
    bool accepted = false;
    std::string text;
    std::string check;  // refused: what decided
  };
  Result<Decision> sigstoreSigned(RegistryClient& registry, ContentStore& store,
                                  const ImageRef& ref, const PolicyRequirement& requirement,
                                  const SignedSubjects& subjects, const Context& ctx);

  const ContainersPolicy& policy_;
  bool refused_ = false;
  std::string refused_check_;
  bool collected_ = false;
  bool bundles_collected_ = false;
  std::vector<Candidate> candidates_;
  std::vector<Candidate> bundles_;
  SignatureReasons skipped_;  // signatures not considered, and why
};

}  // namespace pullagent::puller
