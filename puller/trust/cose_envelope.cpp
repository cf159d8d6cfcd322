#include "puller/trust/cose_envelope.h"

#include <algorithm>
#include <array>
#include <string>
#include <utility>
#include <vector>

#include "puller/trust/cbor.h"

namespace pullagent::puller::notation {
namespace {

constexpr uint64_t kCoseSign1Tag = 18;
constexpr uint64_t kEpochTimeTag = 1;
// Header labels of RFC 9052 §3.1 and RFC 9360.
constexpr int64_t kAlgorithmLabel = 1;
constexpr int64_t kCriticalLabel = 2;
constexpr int64_t kContentTypeLabel = 3;
constexpr int64_t kX5ChainLabel = 33;

Error coseError(const std::string& where, const std::string& why) {
  return makeError(ErrorCode::kUntrusted, "COSE envelope: " + where + ": " + why);
}

// COSE's algorithm identifiers (RFC 9053, RFC 8230) by their JWS names.
std::optional<std::string> algorithmName(int64_t identifier) {
  static constexpr std::array<std::pair<int64_t, std::string_view>, 6> kAlgorithms{{
      {-37, "PS256"},
      {-38, "PS384"},
      {-39, "PS512"},
      {-7, "ES256"},
      {-35, "ES384"},
      {-36, "ES512"},
  }};
  for (const auto& [id, name] : kAlgorithms) {
    if (id == identifier)
      return std::string(name);
  }
  return std::nullopt;
}

std::string labelText(std::string_view label) {
  return "\"" + std::string(label) + "\"";
}

Result<std::time_t> readCoseTime(const cbor::Item& value, std::string_view label) {
  const std::string where = "protected header: " + labelText(label);
  if (value.type != cbor::Item::Type::kTag || value.number != kEpochTimeTag)
    return coseError(where, "is " + value.describe() + ", not a tag 1 date-time");
  const auto seconds = value.items.front().integer();
  // Before 1970 or past 9999: no signing time of a real signature.
  if (value.items.front().type != cbor::Item::Type::kUnsigned || !seconds ||
      *seconds > 253402300799)
    return coseError(where, "is not a whole number of seconds since 1970");
  return static_cast<std::time_t>(*seconds);
}

// The protected header's map: the algorithm, the content type, the scheme, its times, crit.
Status readProtected(const cbor::Item& header, Envelope& envelope) {
  constexpr std::string_view kWhere = "protected header";
  if (header.type != cbor::Item::Type::kMap)
    return coseError(std::string(kWhere), "is " + header.describe() + ", not a map");
  const cbor::Item* algorithm = header.find(kAlgorithmLabel);
  if (algorithm == nullptr)
    return coseError(std::string(kWhere), "has no algorithm (label 1)");
  const auto identifier = algorithm->integer();
  auto name = identifier ? algorithmName(*identifier) : std::nullopt;
  if (!name)
    return coseError("protected header: label 1 (alg)",
                     algorithm->describe() +
                         " is not one of PS256/384/512 (-37/-38/-39), ES256/384/512 (-7/-35/-36)");
  envelope.algorithm = *name;
  const cbor::Item* content_type = header.find(kContentTypeLabel);
  if (content_type == nullptr || !content_type->isText(kPayloadContentType))
    return coseError("protected header: label 3 (content type)",
                     "expected \"" + std::string(kPayloadContentType) + "\"");
  const cbor::Item* scheme = header.find(kSigningScheme);
  if (scheme == nullptr || scheme->type != cbor::Item::Type::kText ||
      (scheme->bytes != kSchemeX509 && scheme->bytes != kSchemeSigningAuthority))
    return coseError("protected header: " + labelText(kSigningScheme),
                     "expected notary.x509 or notary.x509.signingAuthority");
  envelope.signing_scheme = scheme->bytes;
  const cbor::Item* signing_time = header.find(kSigningTime);
  const cbor::Item* authentic_time = header.find(kAuthenticSigningTime);
  if (envelope.signing_scheme == kSchemeX509) {
    if (signing_time == nullptr)
      return coseError("protected header: " + labelText(kSigningTime),
                       "is required by the notary.x509 scheme");
    if (authentic_time != nullptr)
      return coseError("protected header: " + labelText(kAuthenticSigningTime),
                       "belongs to the signingAuthority scheme only");
    ASSIGN_OR_RETURN(envelope.signing_time, readCoseTime(*signing_time, kSigningTime));
  } else {
    if (authentic_time == nullptr)
      return coseError("protected header: " + labelText(kAuthenticSigningTime),
                       "is required by the notary.x509.signingAuthority scheme");
    if (signing_time != nullptr)
      return coseError("protected header: " + labelText(kSigningTime),
                       "belongs to the notary.x509 scheme only");
    ASSIGN_OR_RETURN(envelope.authentic_signing_time,
                     readCoseTime(*authentic_time, kAuthenticSigningTime));
  }
  if (const cbor::Item* expiry = header.find(kExpiry)) {
    ASSIGN_OR_RETURN(envelope.expiry, readCoseTime(*expiry, kExpiry));
    const std::time_t signed_at =
        envelope.signing_time ? *envelope.signing_time : *envelope.authentic_signing_time;
    if (*envelope.expiry <= signed_at)
      return coseError("protected header: " + labelText(kExpiry), "is not after the signing time");
  }

  const cbor::Item* critical = header.find(kCriticalLabel);
  if (critical == nullptr || critical->type != cbor::Item::Type::kArray || critical->items.empty())
    return coseError("protected header: label 2 (crit)", "is not a list of labels");
  std::vector<std::string> listed;
  for (size_t i = 0; i < critical->items.size(); ++i) {
    const cbor::Item& entry = critical->items[i];
    const std::string where = "protected header: crit[" + std::to_string(i) + "]";
    if (entry.type != cbor::Item::Type::kText ||
        std::find(kKnownCritical.begin(), kKnownCritical.end(), entry.bytes) ==
            kKnownCritical.end())
      return coseError(
          where, "the critical attribute " + entry.describe() + " is unknown to this verifier");
    if (header.find(entry.bytes) == nullptr)
      return coseError(where, "the critical attribute \"" + entry.bytes + "\" is absent");
    if (std::find(listed.begin(), listed.end(), entry.bytes) != listed.end())
      return coseError(where, "\"" + entry.bytes + "\" is listed twice");
    listed.push_back(entry.bytes);
  }
  for (auto required : kKnownCritical) {
    if (header.find(required) != nullptr &&
        std::find(listed.begin(), listed.end(), required) == listed.end())
      return coseError("protected header: label 2 (crit)", "does not list " + labelText(required));
  }
  return {};
}

// The unprotected header: the chain and the timestamp. Other attributes (the signing agent)
// are not signed and decide nothing.
Status readUnprotected(const cbor::Item& header, const cbor::Item& protected_header,
                       Envelope& envelope) {
  if (header.type != cbor::Item::Type::kMap)
    return coseError("unprotected header", "is " + header.describe() + ", not a map");
  // RFC 9052 §3: a label is in one bucket only; else which one counts would be a choice.
  for (const auto& label : header.keys) {
    const bool twice = label.type == cbor::Item::Type::kText
                           ? protected_header.find(label.bytes) != nullptr
                           : label.integer() && protected_header.find(*label.integer()) != nullptr;
    if (twice)
      return coseError("unprotected header: " + label.describe(), "is in the protected one too");
  }
  const cbor::Item* chain = header.find(kX5ChainLabel);
  if (chain == nullptr)
    return coseError("unprotected header", "has no certificate chain (label 33, x5chain)");
  // RFC 9360: an array of certificates, or one certificate alone.
  std::vector<const cbor::Item*> certificates;
  if (chain->type == cbor::Item::Type::kArray) {
    for (const auto& entry : chain->items)
      certificates.push_back(&entry);
  } else {
    certificates.push_back(chain);
  }
  if (certificates.empty())
    return coseError("unprotected header: label 33 (x5chain)", "is empty");
  if (certificates.size() > kMaxChainLength)
    return coseError("unprotected header: label 33 (x5chain)",
                     "has more than " + std::to_string(kMaxChainLength) + " certificates");
  for (size_t i = 0; i < certificates.size(); ++i) {
    const std::string where = "unprotected header: x5chain[" + std::to_string(i) + "]";
    if (certificates[i]->type != cbor::Item::Type::kBytes)
      return coseError(where, "is " + certificates[i]->describe() + ", not DER bytes");
    auto certificate = Certificate::fromDer(certificates[i]->bytes);
    if (!certificate)
      return coseError(where, certificate.error().message);
    envelope.chain.push_back(std::move(certificate).value());
  }
  if (const cbor::Item* timestamp = header.find(kTimestampSignature)) {
    if (timestamp->type != cbor::Item::Type::kBytes || timestamp->bytes.empty())
      return coseError("unprotected header: " + labelText(kTimestampSignature),
                       "is not an RFC 3161 token's bytes");
    envelope.timestamped = true;
    envelope.timestamp_token = timestamp->bytes;
  }
  return {};
}

}  // namespace

Result<Envelope> parseCose(std::string_view bytes) {
  if (bytes.size() > static_cast<size_t>(kMaxEnvelopeSize))
    return coseError("size", "larger than " + std::to_string(kMaxEnvelopeSize) + " bytes");
  auto decoded = cbor::decode(bytes);
  if (!decoded)
    return makeError(ErrorCode::kUntrusted, "COSE envelope: " + decoded.error().message);
  const cbor::Item& tagged = *decoded;
  if (tagged.type != cbor::Item::Type::kTag || tagged.number != kCoseSign1Tag)
    return coseError("message", "is " + tagged.describe() + ", not a COSE_Sign1_Tagged (tag 18)");
  const cbor::Item& message = tagged.items.front();
  if (message.type != cbor::Item::Type::kArray || message.items.size() != 4)
    return coseError("message",
                     "is not an array of protected header, unprotected header, "
                     "payload and signature");
  const cbor::Item& protected_bytes = message.items[0];
  const cbor::Item& unprotected = message.items[1];
  const cbor::Item& payload = message.items[2];
  const cbor::Item& signature = message.items[3];
  if (protected_bytes.type != cbor::Item::Type::kBytes || protected_bytes.bytes.empty())
    return coseError("protected header", "is not a byte string holding a map");
  // A detached payload (nil) would let the registry's manifest be anything.
  if (payload.type != cbor::Item::Type::kBytes || payload.bytes.empty())
    return coseError("payload", "is not attached");
  if (signature.type != cbor::Item::Type::kBytes || signature.bytes.empty() ||
      signature.bytes.size() > 1024)
    return coseError("signature", "is not the bytes of one signature");
  auto protected_header = cbor::decode(protected_bytes.bytes);
  if (!protected_header)
    return makeError(ErrorCode::kUntrusted,
                     "COSE envelope: protected header: " + protected_header.error().message);

  Envelope envelope;
  RETURN_IF_ERROR(readProtected(*protected_header, envelope));
  RETURN_IF_ERROR(readUnprotected(unprotected, *protected_header, envelope));
  envelope.payload = payload.bytes;
  envelope.signature = signature.bytes;
  // Sig_structure (RFC 9052 §4.4): ["Signature1", the protected bytes as sent, no external
  // data, the payload].
  constexpr std::string_view kContext = "Signature1";
  envelope.signing_input = cbor::arrayHead(4) + cbor::textHead(kContext.size()) +
                           std::string(kContext) + cbor::bytesHead(protected_bytes.bytes.size()) +
                           protected_bytes.bytes + cbor::bytesHead(0) +
                           cbor::bytesHead(payload.bytes.size()) + payload.bytes;
  return envelope;
}

}  // namespace pullagent::puller::notation
