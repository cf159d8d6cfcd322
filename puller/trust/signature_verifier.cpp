#include "puller/trust/signature_verifier.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "base/base64.h"
#include "puller/trust/cosign_signature.h"
#include "puller/trust/referrer_discovery.h"
#include "puller/trust/sigstore_bundle.h"

namespace pullagent::puller {
namespace {

Error refusal(const ContainersPolicy& policy, const PolicyScope& scope, const std::string& why,
              const std::string& fix) {
  return makeError(ErrorCode::kUntrusted, "refused by the signature policy " + policy.document() +
                                              " (scope " + scope.name + "): " + why + ". " + fix);
}

std::string subjectsText(const SignedSubjects& subjects) {
  std::string text = "the manifest " + subjects.manifest.digest.str();
  if (subjects.index)
    text = "the index " + subjects.index->digest.str() + " or " + text;
  return text;
}

}  // namespace

Status SignatureVerifier::collect(RegistryClient& registry, const SignedSubjects& subjects,
                                  const Context& ctx) {
  if (collected_)
    return {};
  std::vector<Digest> digests;
  if (subjects.index)
    digests.push_back(subjects.index->digest);
  digests.push_back(subjects.manifest.digest);
  for (const auto& subject : digests) {
    const std::string tag = cosignSignatureTag(subject);
    auto fetched = registry.fetchManifest(tag, std::nullopt, ctx);
    if (!fetched) {
      if (fetched.error().code == ErrorCode::kNotFound)
        continue;  // not signed this way
      return fetched.error().context("cosign signatures of " + subject.str());
    }
    auto layers = parseSignatureManifest(fetched->bytes);
    if (!layers) {
      skipped_.add("the tag " + tag + " is not a signature manifest (" + layers.error().message +
                   ")");
      continue;
    }
    // Newest first: `cosign sign` appends, so after many re-signs (or a key rotation) the
    // signature that counts is at the end.
    size_t read = 0;
    for (auto it = layers->rbegin(); it != layers->rend(); ++it) {
      const Descriptor& layer = *it;
      if (read == cosign::kMaxSignatures) {
        skipped_.add("signatures under " + tag + " past the newest " +
                     std::to_string(cosign::kMaxSignatures) + " were not read");
        break;
      }
      ++read;
      if (layer.media_type != cosign::kSimpleSigning)
        continue;
      const std::string where = "signature " + layer.digest.str() + " (" + tag + ")";
      auto annotation = layer.annotations.find(std::string(cosign::kSignatureAnnotation));
      if (annotation == layer.annotations.end()) {
        skipped_.add(where + ": no " + std::string(cosign::kSignatureAnnotation) + " annotation");
        continue;
      }
      auto signature = decodeBase64(annotation->second);
      if (!signature || signature->empty()) {
        skipped_.add(where + ": the annotation is not base64");
        continue;
      }
      if (layer.size <= 0 || layer.size > cosign::kMaxPayloadSize) {
        skipped_.add(where + ": a payload of " + std::to_string(layer.size) +
                     " bytes (at most 64 KiB)");
        continue;
      }
      candidates_.push_back({subject, fetched->digest, layer, std::move(*signature)});
    }
  }
  collected_ = true;
  return {};
}

Status SignatureVerifier::collectBundles(RegistryClient& registry, const SignedSubjects& subjects,
                                         const Context& ctx) {
  if (bundles_collected_)
    return {};
  const ArtifactQuery query{sigstore::kBundleMediaType, sigstore::kMaxBundleSize,
                            "Sigstore bundle"};
  std::vector<Descriptor> described;
  if (subjects.index)
    described.push_back(*subjects.index);
  described.push_back(subjects.manifest);
  for (const auto& subject : described) {
    ASSIGN_OR_RETURN(auto found, discoverReferrers(registry, subject, query, ctx, skipped_));
    for (auto& artifact : found)
      bundles_.push_back(Candidate{artifact.subject.digest, artifact.manifest,
                                   std::move(artifact.layer), std::string(), true});
  }
  bundles_collected_ = true;
  return {};
}

Result<std::string> SignatureVerifier::payloadOf(RegistryClient& registry, ContentStore& store,
                                                 const Candidate& candidate, const Context& ctx) {
  // Always asked of the pull's registry, even when the store holds the bytes: payloads are
  // predictable (a reference and a digest), so a registry that named another tenant's payload
  // and saw no request would learn what this host pulled. The bytes are checked against the
  // digest on the way in; the signature over them is what proves them.
  RegistryClient::BlobFetchOptions options;
  options.even_if_stored = true;
  RETURN_IF_ERROR(registry.fetchBlob(candidate.payload, store, nullptr, ctx, options));
  return store.readBlob(candidate.payload.digest,
                        candidate.bundle ? sigstore::kMaxBundleSize : cosign::kMaxPayloadSize);
}

SignatureVerifier::Judgement SignatureVerifier::judge(const std::string& payload,
                                                      const ImageRef& ref,
                                                      const PolicyRequirement& requirement,
                                                      const Candidate& candidate) {
  const std::string name =
      (candidate.bundle ? "Sigstore bundle " : "signature ") + candidate.payload.digest.str();
  const auto failed = [&](const std::string& check, const std::string& why) {
    return Judgement{false, check, name + ": " + why};
  };
  // What is signed, the signatures over it, and what they sign: a simple-signing payload with
  // the signature from its annotation, or a bundle's DSSE envelope (its statement, under the
  // pre-authentication encoding).
  std::string signed_bytes = payload;
  std::vector<std::string> signatures{candidate.signature};
  std::string statement;
  if (candidate.bundle) {
    auto envelope = parseSigstoreBundle(payload);
    if (!envelope)
      return failed("bundle", envelope.error().message);
    signed_bytes = dssePae(envelope->payload_type, envelope->payload);
    signatures = std::move(envelope->signatures);
    statement = std::move(envelope->payload);
  }
  const PublicKey* signer = nullptr;
  for (const auto& key : requirement.keys) {
    for (const auto& signature : signatures) {
      if (key->verify(signed_bytes, signature)) {
        signer = key.get();
        break;
      }
    }
    if (signer != nullptr)
      break;
  }
  if (signer == nullptr)
    return failed("integrity", "integrity/authenticity: it verifies with none of the " +
                                   std::to_string(requirement.keys.size()) + " trusted key(s)");
  const std::string accepted =
      (candidate.bundle ? "cosign Sigstore bundle " : "cosign signature ") +
      candidate.payload.digest.str() + " of " + candidate.subject.str() + " by the " +
      signer->describe() + " key";
  if (candidate.bundle) {
    auto claims = parseCosignStatement(statement);
    if (!claims)
      return failed("payload", claims.error().message);
    if (std::find(claims->subjects.begin(), claims->subjects.end(), candidate.subject) ==
        claims->subjects.end())
      return failed("digest", "digest: its statement names " +
                                  (claims->subjects.empty() ? std::string("no sha256 digest")
                                                            : claims->subjects.front().str()) +
                                  ", not " + candidate.subject.str());
    if (auto identity = checkUnnamedIdentity(requirement.identity, ref); !identity)
      return failed("identity", "identity: " + identity.error().message);
    return {true, "", accepted};
  }
  auto claims = parseSimpleSigning(payload);
  if (!claims)
    return failed("payload", claims.error().message);
  if (claims->manifest_digest != candidate.subject)
    return failed("digest", "digest: it signs " + claims->manifest_digest.str() + ", not " +
                                candidate.subject.str());
  if (auto identity = checkSignedIdentity(requirement.identity, ref, claims->docker_reference);
      !identity)
    return failed("identity", "identity: " + identity.error().message);
  return {true, "", accepted};
}

Result<SignatureVerifier::Decision> SignatureVerifier::sigstoreSigned(
    RegistryClient& registry, ContentStore& store, const ImageRef& ref,
    const PolicyRequirement& requirement, const SignedSubjects& subjects, const Context& ctx) {
  RETURN_IF_ERROR(collect(registry, subjects, ctx));
  SignatureReasons reasons;
  std::string first_check;  // of the first signature that failed
  auto reason = [&](const std::string& check, std::string text) {
    if (first_check.empty())
      first_check = check;
    reasons.add(std::move(text));
  };
  // The legacy attachments first; the referrers are asked only when none of them satisfies.
  for (int pass = 0; pass < 2; ++pass) {
    if (pass == 1)
      RETURN_IF_ERROR(collectBundles(registry, subjects, ctx));
    for (const auto& candidate : pass == 0 ? candidates_ : bundles_) {
      auto fetched = payloadOf(registry, store, candidate, ctx);
      if (!fetched) {
        // Stopped or out of time: no verdict. Otherwise this signature is unusable, not the
        // image: the others are still read.
        if (fetched.error().code == ErrorCode::kCancelled ||
            fetched.error().code == ErrorCode::kTimeout)
          return fetched.error();
        reason("payload", (candidate.bundle ? "Sigstore bundle " : "signature ") +
                              candidate.payload.digest.str() +
                              ": it could not be read: " + fetched.error().message);
        continue;
      }
      auto judgement = judge(*fetched, ref, requirement, candidate);
      if (judgement.accepted)
        return Decision{true, judgement.text, ""};
      reason(judgement.check, judgement.text);
    }
  }
  std::string why;
  if (candidates_.empty() && bundles_.empty())
    why = "no cosign signature of " + subjectsText(subjects) +
          " (tags sha256-<hex>.sig, nor a Sigstore bundle among its referrers)";
  else
    why = "no cosign signature satisfies " + requirement.where;
  why += reasons.joined() + skipped_.joined();
  return Decision{false, why, candidates_.empty() && bundles_.empty() ? "unsigned" : first_check};
}

Result<SignatureVerdict> SignatureVerifier::verify(RegistryClient& registry, ContentStore& store,
                                                   const ImageRef& ref,
                                                   const SignedSubjects& subjects,
                                                   const Context& ctx) {
  const PolicyScope scope = policy_.scopeFor(ref);
  SignatureVerdict verdict{scope.name, "", {}, std::nullopt};
  for (const auto& requirement : *scope.requirements) {
    std::string accepted;
    switch (requirement.type) {
      case PolicyRequirement::Type::kInsecureAcceptAnything:
        accepted = "insecureAcceptAnything";
        break;
      case PolicyRequirement::Type::kReject:
        refused_ = true;
        refused_check_ = "reject";
        return refusal(
            policy_, scope, requirement.where + " rejects every image",
            "Change the policy to allow images from " + ref.domain + "/" + ref.repository);
      case PolicyRequirement::Type::kUnsupported:
        refused_ = true;
        refused_check_ = "unsupported";
        return refusal(policy_, scope, requirement.where + ": " + requirement.unsupported,
                       "Change the policy");
      case PolicyRequirement::Type::kSigstoreSigned: {
        // An error is the registry failing to answer: no verdict, the attempt fails as any
        // request's failure does.
        ASSIGN_OR_RETURN(auto decision,
                         sigstoreSigned(registry, store, ref, requirement, subjects, ctx));
        if (!decision.accepted) {
          refused_ = true;
          refused_check_ = decision.check;
          return refusal(policy_, scope, decision.text,
                         "Sign " + ref.str() +
                             " with a key the policy trusts (cosign sign "
                             "--key …) and push the signature, or change the policy");
        }
        accepted = decision.text;
        break;
      }
    }
    verdict.summary += (verdict.summary.empty() ? "" : ", ") + accepted;
  }
  spdlog::info("{}: accepted by the signature policy {} (scope {}): {}", ref.str(),
               policy_.document(), scope.name, verdict.summary);
  return verdict;
}

}  // namespace pullagent::puller
