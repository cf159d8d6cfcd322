// Signature policies (containers-policy.json, a host file that a config tool may have broken),
// and cosign signature manifests, simple-signing payloads, Sigstore bundles and the in-toto
// statements inside them (a registry's answers): each parsed, and each identity a payload names
// checked against a fixed image under every rule.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "puller/trust/containers_policy.h"
#include "puller/trust/cosign_signature.h"
#include "puller/trust/sigstore_bundle.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace pullagent::puller;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto policy = ContainersPolicy::parse(text, "policy")) {
    static const auto image = ImageRef::parse("myreg.azurecr.io/team/app:v1").value();
    (void)policy->scopeFor(image);
  }
  (void)parseSignatureManifest(text);
  if (auto envelope = parseSigstoreBundle(text))
    (void)parseCosignStatement(envelope->payload);
  (void)parseCosignStatement(text);
  if (auto claims = parseSimpleSigning(text)) {
    static const auto image = ImageRef::parse("myreg.azurecr.io/team/app:v1").value();
    for (auto rule :
         {SignedIdentity::Rule::kMatchExact, SignedIdentity::Rule::kMatchRepoDigestOrExact,
          SignedIdentity::Rule::kMatchRepository, SignedIdentity::Rule::kExactReference,
          SignedIdentity::Rule::kExactRepository, SignedIdentity::Rule::kRemapIdentity}) {
      SignedIdentity identity{rule, "myreg.azurecr.io/team/app:v1", "myreg.azurecr.io/team",
                              "other.io/x"};
      (void)checkSignedIdentity(identity, image, claims->docker_reference);
    }
  }
  return 0;
}
