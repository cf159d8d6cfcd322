// What a registry answers about Notary Project signatures (referrers indexes, signature
// manifests, JWS envelopes) and what a host's Notation directory says (trustpolicy.json,
// trusted identities): each parsed, and each envelope verified in full against a statement
// that trusts no certificate, so that every check up to authenticity runs on hostile bytes.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "puller/trust/jws_envelope.h"
#include "puller/trust/notary_signature.h"
#include "puller/trust/notation_policy.h"
#include "puller/trust/referrers.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace pullagent::puller;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  static const NotationTrustPolicy statement = [] {
    NotationTrustPolicy strict;
    strict.name = "fuzz";
    strict.level = "strict";
    strict.any_identity = true;
    return strict;
  }();
  static const Descriptor subject = [] {
    Descriptor descriptor;
    descriptor.media_type = "application/vnd.oci.image.manifest.v1+json";
    descriptor.digest = Digest::parse("sha256:" + std::string(64, 'a')).value();
    descriptor.size = 1234;
    return descriptor;
  }();
  (void)verifyNotarySignature(text, notation::kJwsMediaType, statement, subject, 1'800'000'000);
  (void)verifyNotarySignature(text, notation::kCoseMediaType, statement, subject, 1'800'000'000);
  (void)parseReferrers(text, notation::kSignatureArtifactType);
  (void)parseArtifactManifest(text);
  (void)notation::parseRfc3339(text);
  if (auto name = parseDistinguishedName(text))
    (void)identityMatches(*name, *name);
  // No trust store exists there: the statements parse up to their first store.
  if (auto policy = NotationPolicy::parse(text, "trustpolicy.json", "/nonexistent")) {
    static const auto image = ImageRef::parse("myreg.azurecr.io/team/app:v1").value();
    (void)policy->policyFor(image);
  }
  return 0;
}
