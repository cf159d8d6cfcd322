#include "puller/trust/trust_policy.h"

#include "puller/oci/sha256.h"
#include "puller/trust/notation_verifier.h"

namespace pullagent::puller {

TrustPolicy::TrustPolicy(std::shared_ptr<const ContainersPolicy> containers,
                         std::shared_ptr<const NotationPolicy> notation,
                         std::optional<ExternalVerifierConfig> verifiers)
    : containers_(std::move(containers)),
      notation_(std::move(notation)),
      verifiers_(std::move(verifiers)) {
  Sha256 hasher;
  if (containers_) {
    hasher.update("containers " + containers_->hash().str() + "\n");
    document_ = containers_->document();
  }
  if (notation_) {
    hasher.update("notation " + notation_->hash().str() + "\n");
    document_ += (document_.empty() ? "" : " and ") + notation_->document();
  }
  if (verifiers_) {
    // Its settings; the directory is read at every verification, as containerd reads it.
    hasher.update("verifiers " + verifiers_->bin_dir.string() + " " +
                  std::to_string(verifiers_->max_verifiers) + " " +
                  std::to_string(verifiers_->per_verifier_timeout.count()) + "\n");
    document_ += (document_.empty() ? "" : " and ") + std::string("the image verifiers in ") +
                 verifiers_->bin_dir.string();
  }
  hash_ = hasher.finish();
}

std::string TrustPolicy::verdictKey() const {
  return verifiers_ ? hash_.str() + "+" + verifierFingerprint(*verifiers_) : hash_.str();
}

Result<SignatureVerdict> TrustPolicy::verify(RegistryClient& registry, ContentStore& store,
                                             const ImageRef& ref, const SignedSubjects& subjects,
                                             const Context& ctx, Report* report,
                                             HttpClient* http) const {
  SignatureVerdict verdict;
  if (containers_) {
    SignatureVerifier verifier(*containers_);
    auto cosign = verifier.verify(registry, store, ref, subjects, ctx);
    if (!cosign) {
      if (report != nullptr)
        *report = {verifier.refused(), verifier.refusedCheck()};
      return cosign.error();
    }
    verdict = std::move(cosign).value();
  }
  if (notation_) {
    NotationVerifier verifier(*notation_);
    auto notary = verifier.verify(registry, store, ref, subjects, ctx, http);
    if (!notary) {
      if (report != nullptr)
        *report = {verifier.refused(), verifier.refusedCheck()};
      return notary.error();
    }
    verdict.logged_checks = notary->logged_checks;
    verdict.holds_until = notary->holds_until;
    verdict.scope += (verdict.scope.empty() ? "" : ", ") + notary->scope;
    verdict.summary += (verdict.summary.empty() ? "" : "; ") + notary->summary;
  }
  if (verifiers_) {
    bool blocked = false;
    auto judged =
        runExternalVerifiers(*verifiers_, ref.str(),
                             subjects.index ? *subjects.index : subjects.manifest, ctx, &blocked);
    if (!judged) {
      if (report != nullptr)
        *report = {blocked, "external"};
      return judged.error();
    }
    verdict.scope += (verdict.scope.empty() ? "" : ", ") + std::string("image verifiers");
    verdict.summary += (verdict.summary.empty() ? "" : "; ") + *judged;
    spdlog::info("{}: allowed by the image verifiers in {}: {}", ref.str(),
                 verifiers_->bin_dir.string(), *judged);
  }
  return verdict;
}

}  // namespace pullagent::puller
