#pragma once

#include <string>
#include <string_view>

#include <vector>

#include "base/error.h"
#include "puller/oci/digest.h"
#include "puller/oci/manifest.h"

namespace pullagent::puller {

namespace cosign {
// The layer media type of a signature in the legacy attachment, and the annotation that holds
// the base64 signature over the layer's bytes (sigstore/cosign specs/SIGNATURE_SPEC.md).
inline constexpr std::string_view kSimpleSigning =
    "application/vnd.dev.cosign.simplesigning.v1+json";
inline constexpr std::string_view kSignatureAnnotation = "dev.cosignproject.cosign/signature";
// No payload cosign writes comes near this; a registry that serves more is hostile.
inline constexpr int64_t kMaxPayloadSize = 64 * 1024;
// Signatures looked at per image: cosign appends one layer per `cosign sign`.
inline constexpr size_t kMaxSignatures = 32;
}  // namespace cosign

// The tag cosign attaches the signatures of `signed_digest` under: "sha256-<hex>.sig".
std::string cosignSignatureTag(const Digest& signed_digest);

// The layers of the manifest under a .sig tag (an OCI or Docker image manifest whose layers are
// signatures, not filesystem layers: the image manifest parser would refuse them). Each
// layer's media type, digest, size and annotations are checked for their types; errors are
// kProtocol, naming the field.
Result<std::vector<Descriptor>> parseSignatureManifest(std::string_view bytes);

// What a simple-signing payload claims, once its signature verified:
//   {"critical": {"identity": {"docker-reference": "reg/repo"},
//                 "image": {"docker-manifest-digest": "sha256:…"},
//                 "type": "cosign container image signature"},
//    "optional": {…}}
struct SimpleSigningClaims {
  Digest manifest_digest;
  std::string docker_reference;  // as the signer wrote it
};

// "critical" may hold only type, image and identity, each checked for its type (as
// containers/image reads it); "optional" is ignored, as cosign does. Errors are kUntrusted,
// naming the field.
Result<SimpleSigningClaims> parseSimpleSigning(std::string_view payload);

}  // namespace pullagent::puller
