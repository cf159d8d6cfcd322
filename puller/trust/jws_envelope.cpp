#include "puller/trust/jws_envelope.h"

#include <algorithm>
#include <array>
#include <cctype>

#include "base/base64.h"
#include "base/json_reader.h"

namespace pullagent::puller::notation {
namespace {

Error envelopeError(const std::string& why) {
  return makeError(ErrorCode::kUntrusted, "JWS envelope: " + why);
}

// base64url without padding, as JWS writes it (RFC 7515 §2): the standard alphabet and "="
// are refused, so that one envelope has one spelling.
std::optional<std::string> decodeUrl(std::string_view text, size_t max_bytes) {
  if (text.find_first_of("+/= \t\r\n") != std::string_view::npos)
    return std::nullopt;
  return decodeBase64(text, max_bytes);
}

Result<std::time_t> readTime(const JsonReader& value) {
  ASSIGN_OR_RETURN(auto text, value.string());
  auto parsed = parseRfc3339(text);
  if (!parsed)
    return value.error("not an RFC 3339 time");
  return *parsed;
}

}  // namespace

Result<Envelope> parseJws(std::string_view bytes) {
  if (bytes.size() > static_cast<size_t>(kMaxEnvelopeSize))
    return envelopeError("larger than " + std::to_string(kMaxEnvelopeSize) + " bytes");
  ASSIGN_OR_RETURN(auto doc, parseJson(bytes, "JWS envelope", ErrorCode::kUntrusted, 16));
  const JsonReader root(doc, "JWS envelope", ErrorCode::kUntrusted);
  if (!root.isObject())
    return root.typeError("an object");
  ASSIGN_OR_RETURN(auto members, root.members());
  for (const auto& [key, member] : members) {
    // The flattened JSON serialization has one signature; "signatures" (the general form)
    // would carry others beside it that nobody checks.
    if (key != "payload" && key != "protected" && key != "header" && key != "signature")
      return member.error("unknown member");
  }
  Envelope envelope;
  ASSIGN_OR_RETURN(auto payload_text, root["payload"].string());
  ASSIGN_OR_RETURN(auto protected_text, root["protected"].string());
  ASSIGN_OR_RETURN(auto signature_text, root["signature"].string());
  auto payload = decodeUrl(payload_text, bytes.size());
  auto protected_bytes = decodeUrl(protected_text, bytes.size());
  auto signature = decodeUrl(signature_text, 1024);
  if (!payload || payload->empty())
    return root["payload"].error("not base64url");
  if (!protected_bytes || protected_bytes->empty())
    return root["protected"].error("not base64url");
  if (!signature || signature->empty())
    return root["signature"].error("not base64url");
  envelope.payload = std::move(*payload);
  envelope.signature = std::move(*signature);
  envelope.signing_input = protected_text + "." + payload_text;

  ASSIGN_OR_RETURN(auto header_doc,
                   parseJson(*protected_bytes, "JWS protected header", ErrorCode::kUntrusted, 8));
  const JsonReader header(header_doc, "JWS protected header", ErrorCode::kUntrusted);
  if (!header.isObject())
    return header.typeError("an object");
  ASSIGN_OR_RETURN(envelope.algorithm, header["alg"].string());
  static constexpr std::array<std::string_view, 6> kAlgorithms{"PS256", "PS384", "PS512",
                                                               "ES256", "ES384", "ES512"};
  if (std::find(kAlgorithms.begin(), kAlgorithms.end(), envelope.algorithm) == kAlgorithms.end())
    return header["alg"].error("\"" + envelope.algorithm.substr(0, 20) +
                               "\" is not one of PS256/384/512, ES256/384/512");
  ASSIGN_OR_RETURN(auto content_type, header["cty"].string());
  if (content_type != kPayloadContentType)
    return header["cty"].error("expected \"" + std::string(kPayloadContentType) + "\"");
  ASSIGN_OR_RETURN(envelope.signing_scheme, header[kSigningScheme].string());
  if (envelope.signing_scheme != kSchemeX509 && envelope.signing_scheme != kSchemeSigningAuthority)
    return header[kSigningScheme].error("expected notary.x509 or notary.x509.signingAuthority");
  if (envelope.signing_scheme == kSchemeX509) {
    if (header[kSigningTime].missing())
      return header[kSigningTime].error("is required by the notary.x509 scheme");
    if (!header[kAuthenticSigningTime].missing())
      return header[kAuthenticSigningTime].error("belongs to the signingAuthority scheme only");
    ASSIGN_OR_RETURN(envelope.signing_time, readTime(header[kSigningTime]));
  } else {
    if (header[kAuthenticSigningTime].missing())
      return header[kAuthenticSigningTime].error(
          "is required by the notary.x509.signingAuthority scheme");
    if (!header[kSigningTime].missing())
      return header[kSigningTime].error("belongs to the notary.x509 scheme only");
    ASSIGN_OR_RETURN(envelope.authentic_signing_time, readTime(header[kAuthenticSigningTime]));
  }
  if (!header[kExpiry].missing()) {
    ASSIGN_OR_RETURN(envelope.expiry, readTime(header[kExpiry]));
    const std::time_t signed_at =
        envelope.signing_time ? *envelope.signing_time : *envelope.authentic_signing_time;
    if (*envelope.expiry <= signed_at)
      return header[kExpiry].error("is not after the signing time");
  }

  ASSIGN_OR_RETURN(auto critical, header["crit"].elements());
  std::vector<std::string> listed;
  for (const auto& entry : critical) {
    ASSIGN_OR_RETURN(auto name, entry.string());
    if (std::find(kKnownCritical.begin(), kKnownCritical.end(), name) == kKnownCritical.end())
      return entry.error("the critical attribute \"" + name.substr(0, 80) +
                         "\" is unknown to this verifier");
    if (header[name].missing())
      return entry.error("the critical attribute \"" + name + "\" is absent");
    if (std::find(listed.begin(), listed.end(), name) != listed.end())
      return entry.error("\"" + name + "\" is listed twice");
    listed.push_back(name);
  }
  for (auto required : kKnownCritical) {
    if (!header[required].missing() &&
        std::find(listed.begin(), listed.end(), required) == listed.end())
      return header["crit"].error("does not list " + std::string(required));
  }

  const JsonReader unprotected = root["header"];
  if (!unprotected.isObject())
    return unprotected.typeError("an object");
  // Other unprotected attributes (io.cncf.notary.signingAgent, spelt "SigningAgent" by older
  // signers) are not signed and decide nothing: ignored, as Notation ignores them.
  ASSIGN_OR_RETURN(auto chain, unprotected["x5c"].elements());
  if (chain.empty())
    return unprotected["x5c"].error("is empty");
  if (chain.size() > kMaxChainLength)
    return unprotected["x5c"].error("has more than " + std::to_string(kMaxChainLength) +
                                    " certificates");
  for (const auto& entry : chain) {
    ASSIGN_OR_RETURN(auto text, entry.string());
    // x5c is standard base64 (RFC 7515 §4.1.6), not base64url.
    auto der = decodeBase64(text, Certificate::kMaxBytes);
    if (!der || text.find_first_of("-_") != std::string::npos)
      return entry.error("not base64 DER");
    auto certificate = Certificate::fromDer(*der);
    if (!certificate)
      return entry.error(certificate.error().message);
    envelope.chain.push_back(std::move(certificate).value());
  }
  const JsonReader timestamp = unprotected[kTimestampSignature];
  if (!timestamp.missing()) {
    ASSIGN_OR_RETURN(auto text, timestamp.string());
    auto token = decodeBase64(text, 64 * 1024);
    if (!token || token->empty())
      return timestamp.error("not base64");
    envelope.timestamped = true;
    envelope.timestamp_token = std::move(*token);
  }
  return envelope;
}

}  // namespace pullagent::puller::notation
