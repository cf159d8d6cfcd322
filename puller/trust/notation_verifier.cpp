#include "puller/trust/notation_verifier.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

#include "puller/trust/notary_envelope.h"
#include "puller/trust/notary_signature.h"
#include "puller/trust/referrer_discovery.h"

namespace pullagent::puller {

Status NotationVerifier::collectFor(RegistryClient& registry, const Descriptor& subject,
                                    const Context& ctx) {
  const ArtifactQuery query{notation::kSignatureArtifactType, notation::kMaxEnvelopeSize,
                            "Notary signature"};
  ASSIGN_OR_RETURN(auto found, discoverReferrers(registry, subject, query, ctx, skipped_));
  for (auto& artifact : found)
    candidates_.push_back({artifact.subject, artifact.manifest, artifact.layer});
  return {};
}

Status NotationVerifier::collect(RegistryClient& registry, const SignedSubjects& subjects,
                                 const Context& ctx) {
  if (subjects.index)
    RETURN_IF_ERROR(collectFor(registry, *subjects.index, ctx));
  return collectFor(registry, subjects.manifest, ctx);
}

Result<SignatureVerdict> NotationVerifier::verify(RegistryClient& registry, ContentStore& store,
                                                  const ImageRef& ref,
                                                  const SignedSubjects& subjects,
                                                  const Context& ctx, HttpClient* http) {
  const NotationTrustPolicy* statement = policy_.policyFor(ref);
  const std::string repository = ref.domain + "/" + ref.repository;
  if (statement == nullptr) {
    refused_ = true;
    refused_check_ = "scope";
    return makeError(ErrorCode::kUntrusted,
                     "refused by the signature policy " + policy_.document() +
                         ": no statement's registryScopes covers " + repository +
                         ". Add a statement for \"" + repository + "\" (or \"*\")");
  }
  SignatureVerdict verdict{statement->name, "", {}, std::nullopt};
  if (statement->skip) {
    verdict.summary = "Notation level skip (" + statement->where + ")";
    spdlog::info("{}: not verified: {}", ref.str(), verdict.summary);
    return verdict;
  }
  const auto refusal = [&](const std::string& why, const std::string& fix) {
    refused_ = true;
    return makeError(ErrorCode::kUntrusted, "refused by the signature policy " + statement->where +
                                                " (level " + statement->level + "): " + why + ". " +
                                                fix);
  };
  RETURN_IF_ERROR(collect(registry, subjects, ctx));
  const std::time_t now = std::chrono::system_clock::to_time_t(ctx.clock->wallNow());
  SignatureReasons reasons;
  std::string first_check;  // of the first signature that failed
  for (const auto& candidate : candidates_) {
    const std::string name = "signature " + candidate.signature_manifest.str();
    if (candidate.envelope.media_type != notation::kJwsMediaType &&
        candidate.envelope.media_type != notation::kCoseMediaType) {
      first_check = first_check.empty() ? "envelope" : first_check;
      reasons.add(name + ": an envelope of the type \"" +
                  candidate.envelope.media_type.substr(0, 80) + "\", neither JWS nor COSE");
      continue;
    }
    // Always asked of the pull's registry, never taken from the store unasked (see the cosign
    // verifier: a registry that saw no request would learn what this host holds).
    RegistryClient::BlobFetchOptions options;
    options.even_if_stored = true;
    if (auto fetched = registry.fetchBlob(candidate.envelope, store, nullptr, ctx, options);
        !fetched) {
      if (fetched.error().code == ErrorCode::kCancelled ||
          fetched.error().code == ErrorCode::kTimeout)
        return fetched.error();
      reasons.add(name + ": its envelope could not be read: " + fetched.error().message);
      first_check = first_check.empty() ? "envelope" : first_check;
      continue;
    }
    auto bytes = store.readBlob(candidate.envelope.digest, notation::kMaxEnvelopeSize);
    if (!bytes) {
      reasons.add(name + ": its envelope could not be read: " + bytes.error().message);
      first_check = first_check.empty() ? "envelope" : first_check;
      continue;
    }
    RevocationCheck revocation;
    if (http != nullptr)
      revocation = [&](const CertificateChain& chain, std::optional<std::time_t> signing_time) {
        return checkRevocation(*http, chain, {now, signing_time, &policy_.revocationCache()}, ctx);
      };
    const auto outcome = verifyNotarySignature(*bytes, candidate.envelope.media_type, *statement,
                                               candidate.subject, now, revocation);
    if (outcome.failure) {
      reasons.add(name + ": " + *outcome.failure);
      first_check = first_check.empty() ? outcome.failed_check : first_check;
      continue;
    }
    verdict.logged_checks = outcome.logged_checks;
    verdict.holds_until = outcome.holds_until;
    const std::string& signer = outcome.signer;
    for (const auto& text : outcome.logged)
      spdlog::warn("{}: Notary {} of {} accepted under level {} of {}, although {}", ref.str(),
                   name, candidate.subject.digest.str(), statement->level, statement->where, text);
    verdict.summary = "Notary " + name + " of " + candidate.subject.digest.str() + " by \"" +
                      signer + "\" (" + statement->where + ", level " + statement->level + ")";
    spdlog::info("{}: accepted: {}", ref.str(), verdict.summary);
    return verdict;
  }
  const std::string subjects_text = subjects.index
                                        ? "the index " + subjects.index->digest.str() +
                                              " or the manifest " + subjects.manifest.digest.str()
                                        : "the manifest " + subjects.manifest.digest.str();
  if (candidates_.empty()) {
    if (statement->level == "audit") {
      spdlog::warn("{}: no Notary signature of {}; published under level audit of {}{}", ref.str(),
                   subjects_text, statement->where, skipped_.joined());
      verdict.summary = "unsigned, published under Notation level audit (" + statement->where + ")";
      verdict.logged_checks = {"unsigned"};
      return verdict;
    }
    refused_check_ = "unsigned";
    return refusal("no Notary signature of " + subjects_text +
                       " (referrers, or the tag sha256-<hex>)" + skipped_.joined(),
                   "Sign " + ref.str() + " with `notation sign` and a certificate the policy " +
                       "trusts, or change the policy");
  }
  refused_check_ = first_check.empty() ? "envelope" : first_check;
  return refusal(
      "no Notary signature of " + subjects_text + " passes" + reasons.joined() + skipped_.joined(),
      "Sign " + ref.str() + " with a certificate of the statement's trust stores " +
          "and trusted identities, or change the policy");
}

}  // namespace pullagent::puller
