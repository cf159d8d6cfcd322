#pragma once

#include <array>
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
// The signed attributes of the Notary Project (protected header labels in JWS and COSE alike).
inline constexpr std::string_view kSigningScheme = "io.cncf.notary.signingScheme";
inline constexpr std::string_view kSigningTime = "io.cncf.notary.signingTime";
inline constexpr std::string_view kAuthenticSigningTime = "io.cncf.notary.authenticSigningTime";
inline constexpr std::string_view kExpiry = "io.cncf.notary.expiry";
// Unsigned: the RFC 3161 token over the signature's bytes.
inline constexpr std::string_view kTimestampSignature = "io.cncf.notary.timestampSignature";
// Attributes a verifier must understand when the signer marks them critical; anything else in
// "crit" fails the signature.
inline constexpr std::array<std::string_view, 3> kKnownCritical{kSigningScheme,
                                                                kAuthenticSigningTime, kExpiry};
// An envelope is a few KiB (a payload and a chain of two or three certificates); one of more
// is refused unread.
inline constexpr int64_t kMaxEnvelopeSize = 256 * 1024;
// Certificates in one chain, as Notation bounds it.
inline constexpr size_t kMaxChainLength = 10;

// A Notary Project signature envelope (JWS or COSE), parsed and its format checked, not yet
// verified.
struct Envelope {
  std::string algorithm;      // PS256 … ES512 (COSE's algorithms by their JWS names)
  std::string signing_input;  // what the signature covers (JWS signing input, COSE Sig_structure)
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

// The envelope of the layer's media type: application/jose+json (parseJws) or
// application/cose (parseCose); any other type is an error naming it.
Result<Envelope> parseEnvelope(std::string_view media_type, std::string_view bytes);

// The payload's {"targetArtifact": descriptor}.
Result<Descriptor> parsePayload(std::string_view payload);

// RFC 3339 date-time ("2026-12-06T08:17:19Z", "…T08:17:19.123+01:00") as seconds since the
// epoch.
std::optional<std::time_t> parseRfc3339(std::string_view text);

}  // namespace pullagent::puller::notation
