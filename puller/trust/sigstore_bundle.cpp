#include "puller/trust/sigstore_bundle.h"

#include "base/base64.h"
#include "base/json_reader.h"

namespace pullagent::puller {
namespace {

// A signature is at most an RSA 4096 one; a statement naming one image is a few hundred bytes.
constexpr size_t kMaxSignatureBytes = 1024;
constexpr size_t kMaxSignatures = 4;
constexpr size_t kMaxStatementBytes = 64 * 1024;
constexpr size_t kMaxSubjects = 64;

}  // namespace

Result<DsseEnvelope> parseSigstoreBundle(std::string_view bytes) {
  if (bytes.size() > static_cast<size_t>(sigstore::kMaxBundleSize))
    return makeError(
        ErrorCode::kUntrusted,
        "Sigstore bundle: larger than " + std::to_string(sigstore::kMaxBundleSize) + " bytes");
  ASSIGN_OR_RETURN(auto doc, parseJson(bytes, "Sigstore bundle", ErrorCode::kUntrusted, 16));
  const JsonReader root(doc, "Sigstore bundle", ErrorCode::kUntrusted);
  if (!root.isObject())
    return root.typeError("an object");
  ASSIGN_OR_RETURN(auto media_type, root["mediaType"].string());
  if (media_type != sigstore::kBundleMediaType)
    return root["mediaType"].error("\"" + media_type.substr(0, 80) +
                                   "\": this agent reads bundles of v0.3, as cosign v3 writes");
  const JsonReader material = root["verificationMaterial"];
  if (!material.isObject())
    return material.typeError("an object");
  if (!material["certificate"].missing() || !material["x509CertificateChain"].missing())
    return material.error(
        "signed with a certificate (keyless or certificate-based cosign), which this agent "
        "does not verify yet; sign with a key (cosign sign --key)");
  if (!material["publicKey"].isObject())
    return material["publicKey"].error("is required: the bundle of a signature by a key");
  if (!root["messageSignature"].missing())
    return root["messageSignature"].error(
        "a blob's signature, not an image's (cosign v3 signs an image with a DSSE statement)");
  const JsonReader envelope = root["dsseEnvelope"];
  if (!envelope.isObject())
    return envelope.typeError("an object");
  DsseEnvelope out;
  ASSIGN_OR_RETURN(out.payload_type, envelope["payloadType"].string());
  if (out.payload_type != sigstore::kInTotoPayloadType)
    return envelope["payloadType"].error("expected \"" + std::string(sigstore::kInTotoPayloadType) +
                                         "\"");
  ASSIGN_OR_RETURN(auto payload_text, envelope["payload"].string());
  auto payload = decodeBase64(payload_text, kMaxStatementBytes);
  if (!payload || payload->empty())
    return envelope["payload"].error("not base64 of at most 64 KiB");
  out.payload = std::move(*payload);
  ASSIGN_OR_RETURN(auto signatures, envelope["signatures"].elements());
  if (signatures.empty() || signatures.size() > kMaxSignatures)
    return envelope["signatures"].error("expected 1 to " + std::to_string(kMaxSignatures) +
                                        " signatures");
  for (const auto& entry : signatures) {
    ASSIGN_OR_RETURN(auto text, entry["sig"].string());
    auto signature = decodeBase64(text, kMaxSignatureBytes);
    if (!signature || signature->empty())
      return entry["sig"].error("not base64 of one signature");
    out.signatures.push_back(std::move(*signature));
  }
  return out;
}

std::string dssePae(std::string_view payload_type, std::string_view payload) {
  return "DSSEv1 " + std::to_string(payload_type.size()) + " " + std::string(payload_type) + " " +
         std::to_string(payload.size()) + " " + std::string(payload);
}

Result<CosignStatement> parseCosignStatement(std::string_view payload) {
  ASSIGN_OR_RETURN(auto doc, parseJson(payload, "in-toto statement", ErrorCode::kUntrusted, 16));
  const JsonReader root(doc, "in-toto statement", ErrorCode::kUntrusted);
  if (!root.isObject())
    return root.typeError("an object");
  ASSIGN_OR_RETURN(auto type, root["_type"].string());
  if (type != "https://in-toto.io/Statement/v1" && type != "https://in-toto.io/Statement/v0.1")
    return root["_type"].error("expected an in-toto Statement of v1 or v0.1");
  ASSIGN_OR_RETURN(auto predicate, root["predicateType"].string());
  if (predicate != sigstore::kCosignSignPredicate)
    return root["predicateType"].error("\"" + predicate.substr(0, 80) +
                                       "\" is an attestation, not an image signature (" +
                                       std::string(sigstore::kCosignSignPredicate) + ")");
  ASSIGN_OR_RETURN(auto subjects, root["subject"].elements());
  if (subjects.empty() || subjects.size() > kMaxSubjects)
    return root["subject"].error("expected 1 to " + std::to_string(kMaxSubjects) + " subjects");
  CosignStatement out;
  for (const auto& subject : subjects) {
    const JsonReader digests = subject["digest"];
    if (!digests.isObject())
      return digests.typeError("an object");
    // Other algorithms may stand beside sha256; an image's digest is sha256.
    if (digests["sha256"].missing())
      continue;
    ASSIGN_OR_RETURN(auto hex, digests["sha256"].string());
    auto digest = Digest::parse("sha256:" + hex);
    if (!digest)
      return digests["sha256"].error("not a SHA-256 in hex");
    out.subjects.push_back(*digest);
  }
  return out;
}

}  // namespace pullagent::puller
