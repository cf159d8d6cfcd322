#include "puller/trust/cosign_signature.h"

#include "base/json_reader.h"

namespace pullagent::puller {

std::string cosignSignatureTag(const Digest& signed_digest) {
  return "sha256-" + signed_digest.hex() + ".sig";
}

Result<std::vector<Descriptor>> parseSignatureManifest(std::string_view bytes) {
  ASSIGN_OR_RETURN(auto doc, parseJson(bytes, "signature manifest", ErrorCode::kProtocol, 16));
  const JsonReader root(doc, "signature manifest");
  ASSIGN_OR_RETURN(auto version, root["schemaVersion"].integer());
  if (version != 2)
    return root["schemaVersion"].error("expected 2");
  ASSIGN_OR_RETURN(auto layers, root["layers"].elements());
  std::vector<Descriptor> out;
  for (const auto& layer : layers) {
    ASSIGN_OR_RETURN(auto descriptor, parseDescriptor(layer));
    out.push_back(std::move(descriptor));
  }
  return out;
}

Result<SimpleSigningClaims> parseSimpleSigning(std::string_view payload) {
  if (payload.size() > static_cast<size_t>(cosign::kMaxPayloadSize))
    return makeError(ErrorCode::kUntrusted, "cosign payload: larger than 64 KiB");
  ASSIGN_OR_RETURN(auto doc, parseJson(payload, "cosign payload", ErrorCode::kUntrusted, 16));
  const JsonReader root(doc, "cosign payload", ErrorCode::kUntrusted);
  const JsonReader critical = root["critical"];
  // As containers/image reads it: nothing in "critical" but what it defines.
  ASSIGN_OR_RETURN(auto members, critical.members());
  for (const auto& [key, member] : members) {
    if (key != "type" && key != "image" && key != "identity")
      return member.error("unknown key");
  }
  ASSIGN_OR_RETURN(auto type, critical["type"].string());
  if (type != "cosign container image signature")
    return critical["type"].error("expected \"cosign container image signature\"");
  SimpleSigningClaims claims;
  const JsonReader digest = critical["image"]["docker-manifest-digest"];
  ASSIGN_OR_RETURN(auto digest_text, digest.string());
  auto parsed = Digest::parse(digest_text);
  if (!parsed)
    return digest.error(parsed.error().message);
  claims.manifest_digest = parsed.value();
  ASSIGN_OR_RETURN(claims.docker_reference, critical["identity"]["docker-reference"].string());
  return claims;
}

}  // namespace pullagent::puller
