#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "puller/oci/digest.h"

namespace pullagent::puller {

namespace sigstore {
// What `cosign sign` (v3, or v2.6 with --new-bundle-format) attaches to an image as an OCI 1.1
// referrer: a manifest of this artifact type whose one layer is the bundle (sigstore/cosign
// specs/BUNDLE_SPEC.md).
inline constexpr std::string_view kBundleMediaType =
    "application/vnd.dev.sigstore.bundle.v0.3+json";
inline constexpr std::string_view kInTotoPayloadType = "application/vnd.in-toto+json";
// The predicate of an image signature; other predicates are attestations (SBOMs,
// provenance), which sign other claims.
inline constexpr std::string_view kCosignSignPredicate = "https://sigstore.dev/cosign/sign/v1";
// A bundle by a key is 2-4 KiB, 10 with transparency log entries; more is refused unread.
inline constexpr int64_t kMaxBundleSize = 128 * 1024;
}  // namespace sigstore

// A Sigstore bundle (v0.3) whose content is a DSSE envelope, its format checked, its signatures
// not yet verified:
//   {"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
//    "verificationMaterial": {"publicKey": {"hint": …}, "tlogEntries": […], …},
//    "dsseEnvelope": {"payload": b64, "payloadType": "application/vnd.in-toto+json",
//                     "signatures": [{"sig": b64, "keyid": …}]}}
// Refused by name: other bundle versions, verification material other than a public key (a
// certificate: keyless or certificate-based signing, not verified yet), a messageSignature (a
// blob's signature, not an image's). Transparency log entries and timestamps are not read: a
// policy's keys are what vouch (as containers-policy.json's keyPath without
// rekorPublicKeyPath). Errors are kUntrusted, naming the JSON path.
struct DsseEnvelope {
  std::string payload_type;
  std::string payload;                  // the signed bytes (an in-toto statement)
  std::vector<std::string> signatures;  // raw, each over dssePae(payload_type, payload)
};
Result<DsseEnvelope> parseSigstoreBundle(std::string_view bytes);

// DSSE's pre-authentication encoding, what a DSSE signature covers:
// "DSSEv1 <len(type)> <type> <len(payload)> <payload>".
std::string dssePae(std::string_view payload_type, std::string_view payload);

// An in-toto statement (v1 or v0.1) as cosign signs an image:
//   {"_type": "https://in-toto.io/Statement/v1", "subject": [{"digest": {"sha256": hex}}],
//    "predicateType": "https://sigstore.dev/cosign/sign/v1", "predicate": {}}
// It names the image's digest only, no repository or tag. Another predicateType is refused as
// an attestation, not a signature.
struct CosignStatement {
  std::vector<Digest> subjects;  // the sha256 digests it signs
};
Result<CosignStatement> parseCosignStatement(std::string_view payload);

}  // namespace pullagent::puller
