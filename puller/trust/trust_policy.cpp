#include "puller/trust/trust_policy.h"

#include "puller/oci/sha256.h"
#include "puller/trust/notation_verifier.h"

namespace pullagent::puller {

TrustPolicy::TrustPolicy(std::shared_ptr<const ContainersPolicy> containers,
                         std::shared_ptr<const NotationPolicy> notation)
    : containers_(std::move(containers)), notation_(std::move(notation)) {
  Sha256 hasher;
  if (containers_) {
    hasher.update("containers " + containers_->hash().str() + "\n");
    document_ = containers_->document();
  }
  if (notation_) {
    hasher.update("notation " + notation_->hash().str() + "\n");
    document_ += (document_.empty() ? "" : " and ") + notation_->document();
  }
  hash_ = hasher.finish();
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
    verdict.scope += (verdict.scope.empty() ? "" : ", ") + notary->scope;
    verdict.summary += (verdict.summary.empty() ? "" : "; ") + notary->summary;
  }
  return verdict;
}

}  // namespace pullagent::puller
