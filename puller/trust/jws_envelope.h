#pragma once

#include <ctime>
#include <optional>
#include <string>
#include <string_view>

#include "base/error.h"
#include "puller/oci/manifest.h"
#include "puller/trust/certificate.h"

namespace pullagent::puller::notation {

inline constexpr std::string_view kSignatureArtifactType = "application/vnd.cncf.notary.signature";
inline constexpr std::string_view kJwsMediaType = "application/jose+json";
inline constexpr std::string_view kCoseMediaType = "application/cose";
inline constexpr std::string_view kPayloadContentType =
    "application/vnd.cncf.notary.payload.v1+json";
inline constexpr std::string_view kSchemeX509 = "notary.x509";
inline constexpr std::string_view kSchemeSigningAuthority = "notary.x509.signingAuthority";
// An envelope is a few KiB (a payload and a chain of two or three certificates); one of more
// is refused unread.
inline constexpr int64_t kMaxEnvelopeSize = 256 * 1024;
// Certificates in one chain, as Notation bounds it.
inline constexpr size_t kMaxChainLength = 10;

// A Notary Project signature envelope, parsed and its format checked, not yet verified.
struct Envelope {
  std::string algorithm;      // PS256 … ES512
  std::string signing_input;  // what the signature covers
  std::string signature;      // raw bytes
  std::string payload;        // the signed payload's bytes
  std::string signing_scheme;
  std::optional<std::time_t> signing_time;            // notary.x509
  std::optional<std::time_t> authentic_signing_time;  // notary.x509.signingAuthority
  std::optional<std::time_t> expiry;
  CertificateChain chain;       // leaf first
  bool timestamped = false;     // carries an RFC 3161 countersignature
  std::string timestamp_token;  // its DER
};

// The JWS JSON serialization of a Notary Project signature (signature-envelope-jws.md):
//   {"payload": b64url, "protected": b64url(header JSON), "signature": b64url,
//    "header": {"x5c": [b64(DER)…], "io.cncf.notary.signingAgent": …,
//               "io.cncf.notary.timestampSignature": b64}}
// The protected header must carry alg, cty (the Notary payload type), crit and the signing
// scheme; crit must list io.cncf.notary.signingScheme and every critical attribute present,
// and may list no attribute this verifier does not know (an unknown critical attribute fails,
// as the specification demands). Errors name the field.
Result<Envelope> parseJws(std::string_view bytes);

// The payload's {"targetArtifact": descriptor}.
Result<Descriptor> parsePayload(std::string_view payload);

// RFC 3339 date-time ("2026-12-06T08:17:19Z", "…T08:17:19.123+01:00") as seconds since the
// epoch.
std::optional<std::time_t> parseRfc3339(std::string_view text);

}  // namespace pullagent::puller::notation
