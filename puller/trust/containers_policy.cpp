#include "puller/trust/containers_policy.h"

#include <set>

#include "base/base64.h"
#include "base/bounded_read.h"
#include "base/json_reader.h"
#include "puller/oci/sha256.h"

namespace pullagent::puller {
namespace {

constexpr size_t kMaxPolicyBytes = 1 << 20;
constexpr size_t kMaxKeyBytes = 64 * 1024;

using Rule = SignedIdentity::Rule;

// Refuses members other than `allowed`, as containers/image does: a misspelt key must not
// silently weaken a policy.

// The name (domain/repository) of a reference, with Docker's normalisation.
std::string nameOf(const ImageRef& ref) {
  return ref.domain + "/" + ref.repository;
}

// What a reference written in a signature or a policy says, without the default ":latest" a
// pull would add: a bare name stays bare.
struct WrittenReference {
  ImageRef ref;
  bool name_only = false;
  std::string str() const { return name_only ? nameOf(ref) : ref.str(); }
};

Result<WrittenReference> parseWritten(std::string_view text) {
  WrittenReference written;
  ASSIGN_OR_RETURN(written.ref, ImageRef::parse(text));
  const auto slash = text.rfind('/');
  const auto colon = text.rfind(':');
  const bool tagged =
      colon != std::string_view::npos && (slash == std::string_view::npos || colon > slash);
  written.name_only = text.find('@') == std::string_view::npos && !tagged;
  if (written.name_only)
    written.ref.tag.reset();
  return written;
}

// A remapIdentity prefix, as containers/image accepts it: host[:port], host[:port]/namespace…
// or a whole repository, without a tag or digest (a prefix that can never match would quietly
// leave the default rule in its place).
Status checkPrefix(const JsonReader& at, const std::string& prefix) {
  const auto slash = prefix.find('/');
  const std::string host = prefix.substr(0, slash);
  if (prefix.empty() || prefix.back() == '/' || !isValidRegistryDomain(host) ||
      (slash != std::string::npos && !isValidRepositoryName(prefix.substr(slash + 1)))) {
    return at.error("\"" + prefix + "\" is not host[:port], host[:port]/namespace or a repository");
  }
  return {};
}

// A scope is compared with normalised names: one written otherwise ("nginx" for
// docker.io/library/nginx) could never match, so it is refused with the form that would.
Status checkScope(const JsonReader& at, const std::string& scope) {
  if (scope.find('/') == std::string::npos) {
    if (!isValidRegistryDomain(scope))
      return at.error("the scope is neither a registry host nor a reference");
    return {};
  }
  auto written = parseWritten(scope);
  if (!written)
    return at.error("the scope is not a reference: " + written.error().message);
  if (written->str() != scope)
    return at.error("the scope is compared as \"" + written->str() + "\": write it so");
  return {};
}

Result<SignedIdentity> parseIdentity(const JsonReader& value) {
  SignedIdentity identity;
  if (value.missing())
    return identity;
  ASSIGN_OR_RETURN(auto type, value["type"].string());
  if (type == "matchExact" || type == "matchRepoDigestOrExact" || type == "matchRepository") {
    RETURN_IF_ERROR(value.onlyKeys({"type"}));
    identity.rule = type == "matchExact"               ? Rule::kMatchExact
                    : type == "matchRepoDigestOrExact" ? Rule::kMatchRepoDigestOrExact
                                                       : Rule::kMatchRepository;
  } else if (type == "exactReference") {
    RETURN_IF_ERROR(value.onlyKeys({"type", "dockerReference"}));
    identity.rule = Rule::kExactReference;
    ASSIGN_OR_RETURN(identity.reference, value["dockerReference"].string());
    auto ref = parseWritten(identity.reference);
    if (!ref)
      return value["dockerReference"].error(ref.error().message);
    if (ref->name_only)
      return value["dockerReference"].error("\"" + identity.reference +
                                            "\" has neither a tag nor a digest");
  } else if (type == "exactRepository") {
    RETURN_IF_ERROR(value.onlyKeys({"type", "dockerRepository"}));
    identity.rule = Rule::kExactRepository;
    ASSIGN_OR_RETURN(identity.reference, value["dockerRepository"].string());
    auto ref = ImageRef::parse(identity.reference);
    if (!ref)
      return value["dockerRepository"].error(ref.error().message);
  } else if (type == "remapIdentity") {
    RETURN_IF_ERROR(value.onlyKeys({"type", "prefix", "signedPrefix"}));
    identity.rule = Rule::kRemapIdentity;
    ASSIGN_OR_RETURN(identity.prefix, value["prefix"].string());
    ASSIGN_OR_RETURN(identity.signed_prefix, value["signedPrefix"].string());
    RETURN_IF_ERROR(checkPrefix(value["prefix"], identity.prefix));
    RETURN_IF_ERROR(checkPrefix(value["signedPrefix"], identity.signed_prefix));
  } else {
    return value["type"].error(
        "expected matchExact, matchRepoDigestOrExact, matchRepository, "
        "exactReference, exactRepository or remapIdentity, got \"" +
        type + "\"");
  }
  return identity;
}

class PolicyParser {
 public:
  explicit PolicyParser(Sha256& hasher) : hasher_(hasher) {}

  Result<std::vector<PolicyRequirement>> requirements(const JsonReader& list) {
    ASSIGN_OR_RETURN(auto elements, list.elements());
    if (elements.empty())
      return list.error(
          "an empty list of requirements (say \"reject\" or "
          "\"insecureAcceptAnything\")");
    std::vector<PolicyRequirement> out;
    for (const auto& element : elements) {
      ASSIGN_OR_RETURN(auto requirement, parseRequirement(element));
      out.push_back(std::move(requirement));
    }
    return out;
  }

 private:
  Result<PolicyRequirement> parseRequirement(const JsonReader& value) {
    PolicyRequirement requirement;
    requirement.where = value.where();
    ASSIGN_OR_RETURN(auto type, value["type"].string());
    if (type == "insecureAcceptAnything" || type == "reject") {
      RETURN_IF_ERROR(value.onlyKeys({"type"}));
      requirement.type = type == "reject" ? PolicyRequirement::Type::kReject
                                          : PolicyRequirement::Type::kInsecureAcceptAnything;
    } else if (type == "signedBy") {
      RETURN_IF_ERROR(
          value.onlyKeys({"type", "keyType", "keyPath", "keyPaths", "keyData", "signedIdentity"}));
      requirement.type = PolicyRequirement::Type::kUnsupported;
      requirement.unsupported =
          "signedBy (GPG simple signing) is not supported by pullagent: sign with cosign and "
          "require sigstoreSigned, or with Notation";
    } else if (type == "sigstoreSigned") {
      RETURN_IF_ERROR(sigstore(value, requirement));
    } else {
      return value["type"].error(
          "expected insecureAcceptAnything, reject, sigstoreSigned or "
          "signedBy, got \"" +
          type + "\"");
    }
    return requirement;
  }

  Status sigstore(const JsonReader& value, PolicyRequirement& requirement) {
    RETURN_IF_ERROR(
        value.onlyKeys({"type", "keyPath", "keyPaths", "keyData", "fulcio", "rekorPublicKeyPath",
                        "rekorPublicKeyPaths", "rekorPublicKeyData", "signedIdentity"}));
    requirement.type = PolicyRequirement::Type::kSigstoreSigned;
    ASSIGN_OR_RETURN(requirement.identity, parseIdentity(value["signedIdentity"]));
    int sources = 0;
    for (auto key : {"keyPath", "keyPaths", "keyData", "fulcio"})
      sources += value[key].missing() ? 0 : 1;
    if (sources != 1)
      return value.error("exactly one of keyPath, keyPaths, keyData and fulcio is required");
    if (!value["fulcio"].missing()) {
      requirement.type = PolicyRequirement::Type::kUnsupported;
      requirement.unsupported =
          "keyless sigstoreSigned (fulcio) is not supported by pullagent "
          "yet: require a key (keyPath, keyPaths or keyData)";
      return {};
    }
    for (auto key : {"rekorPublicKeyPath", "rekorPublicKeyPaths", "rekorPublicKeyData"}) {
      if (!value[key].missing()) {
        requirement.type = PolicyRequirement::Type::kUnsupported;
        requirement.unsupported = std::string(key) +
                                  ": Rekor inclusion proofs are not checked by pullagent yet: "
                                  "require the key alone";
        return {};
      }
    }
    if (!value["keyData"].missing()) {
      ASSIGN_OR_RETURN(auto data, value["keyData"].string());
      auto pem = decodeBase64(data);
      if (!pem)
        return value["keyData"].error("not base64");
      return addKey(*pem, value["keyData"].where(), requirement);
    }
    std::vector<std::string> paths;
    if (!value["keyPath"].missing()) {
      ASSIGN_OR_RETURN(auto path, value["keyPath"].string());
      paths.push_back(std::move(path));
    } else {
      ASSIGN_OR_RETURN(paths, value["keyPaths"].optionalStrings());
      if (paths.empty())
        return value["keyPaths"].error("an empty list of keys");
    }
    for (size_t i = 0; i < paths.size(); ++i) {
      const JsonReader at = value["keyPath"].missing() ? value["keyPaths"][i] : value["keyPath"];
      const std::filesystem::path path(paths[i]);
      if (!path.is_absolute())
        return at.error("\"" + paths[i] + "\" is not an absolute path");
      auto pem = readRegularFile(path, kMaxKeyBytes, Links::kFollow);
      if (!pem)
        return at.error("cannot read \"" + paths[i] + "\": " + pem.error().message);
      RETURN_IF_ERROR(addKey(*pem, at.where() + " (" + paths[i] + ")", requirement));
    }
    return {};
  }

  Status addKey(const std::string& pem, const std::string& where, PolicyRequirement& requirement) {
    ASSIGN_OR_RETURN(auto key, PublicKey::fromPem(pem, where));
    hasher_.update("\nkey\n");
    hasher_.update(pem);
    requirement.keys.push_back(std::move(key));
    return {};
  }

  Sha256& hasher_;
};

// matchRepoDigestOrExact, as containers/image decides it: a signature naming a bare repository
// never matches; pulled by tag, the whole reference must be the signed one; pulled by digest
// alone, the repository.
bool repoDigestOrExact(const ImageRef& pulled, const WrittenReference& signed_ref) {
  if (signed_ref.name_only)
    return false;
  if (pulled.tag)
    return signed_ref.ref.str() == pulled.str();
  return nameOf(signed_ref.ref) == nameOf(pulled);
}

}  // namespace

Result<ContainersPolicy> ContainersPolicy::load(const std::filesystem::path& path) {
  const std::string document = "containers policy " + path.string();
  auto text = readRegularFile(path, kMaxPolicyBytes, Links::kFollow);
  if (!text)
    return text.error().context(document);
  return parse(*text, document);
}

Result<ContainersPolicy> ContainersPolicy::parse(std::string_view text,
                                                 const std::string& document) {
  ASSIGN_OR_RETURN(auto doc, parseJson(text, document, ErrorCode::kInvalidArgument, 16));
  const JsonReader root(doc, document, ErrorCode::kInvalidArgument);
  if (!root.isObject())
    return root.typeError("an object");
  RETURN_IF_ERROR(root.onlyKeys({"default", "transports"}));
  ContainersPolicy policy;
  policy.document_ = document;
  Sha256 hasher;
  hasher.update(text);
  PolicyParser parser(hasher);
  if (root["default"].missing())
    return root["default"].error("is required (containers-policy.json(5))");
  ASSIGN_OR_RETURN(policy.default_, parser.requirements(root["default"]));
  if (!root["transports"].missing()) {
    ASSIGN_OR_RETURN(auto transports, root["transports"].members());
    for (const auto& [transport, scopes] : transports) {
      ASSIGN_OR_RETURN(auto members, scopes.members());
      if (transport != "docker")
        continue;  // other transports never reach a registry pull
      for (const auto& [scope, list] : members) {
        if (!scope.empty() && scope.find("*") == std::string::npos) {
          RETURN_IF_ERROR(checkScope(list, scope));
        } else if (!scope.empty() && (scope.rfind("*.", 0) != 0 || scope.size() < 3 ||
                                      scope.find_first_of("*/:@", 1) != std::string::npos)) {
          return list.error("a wildcard scope is \"*.\" and a domain (\"*.example.com\")");
        }
        ASSIGN_OR_RETURN(policy.docker_[scope], parser.requirements(list));
      }
    }
  }
  policy.hash_ = hasher.finish();
  return policy;
}

PolicyScope ContainersPolicy::scopeFor(const ImageRef& ref) const {
  auto found = [&](const std::string& scope) -> const std::vector<PolicyRequirement>* {
    auto it = docker_.find(scope);
    return it == docker_.end() ? nullptr : &it->second;
  };
  std::vector<std::string> candidates;
  const std::string name = nameOf(ref);
  if (ref.digest)
    candidates.push_back(name + "@" + ref.digest->str());
  if (ref.tag)
    candidates.push_back(name + ":" + *ref.tag);
  // The name, then each namespace above it, up to the registry host.
  for (std::string scope = name;;) {
    candidates.push_back(scope);
    const auto slash = scope.rfind('/');
    if (slash == std::string::npos)
      break;
    scope.resize(slash);
  }
  // Wildcards over the host's parent domains, the longest first ("*.b.example.com" for
  // "a.b.example.com"); a port is not part of the match.
  std::string host = ref.domain.substr(0, ref.domain.find(':'));
  for (auto dot = host.find('.'); dot != std::string::npos; dot = host.find('.', dot + 1))
    candidates.push_back("*" + host.substr(dot));
  for (const auto& scope : candidates) {
    if (const auto* requirements = found(scope))
      return {scope, requirements};
  }
  if (const auto* requirements = found(""))
    return {"the docker transport's default (\"\")", requirements};
  return {"default", &default_};
}

Status checkSignedIdentity(const SignedIdentity& identity, const ImageRef& pulled,
                           std::string_view signed_reference) {
  auto parsed = parseWritten(signed_reference);
  if (!parsed) {
    return makeError(ErrorCode::kUntrusted, "the signature's docker-reference \"" +
                                                std::string(signed_reference) +
                                                "\" is not a reference");
  }
  const WrittenReference& signed_ref = parsed.value();
  bool ok = false;
  std::string wanted;
  switch (identity.rule) {
    case Rule::kMatchExact:
      ok = !signed_ref.name_only && signed_ref.ref.str() == pulled.str();
      wanted = "exactly " + pulled.str();
      break;
    case Rule::kMatchRepoDigestOrExact:
      ok = repoDigestOrExact(pulled, signed_ref);
      wanted = pulled.tag ? "exactly " + pulled.str() + " (matchRepoDigestOrExact)"
                          : "the repository " + nameOf(pulled) + " (matchRepoDigestOrExact)";
      break;
    case Rule::kMatchRepository:
      ok = nameOf(signed_ref.ref) == nameOf(pulled);
      wanted = "the repository " + nameOf(pulled) + " (matchRepository)";
      break;
    case Rule::kExactReference: {
      auto expected = parseWritten(identity.reference);
      ok = expected && !signed_ref.name_only && signed_ref.str() == expected->str();
      wanted = "exactly " + identity.reference + " (exactReference)";
      break;
    }
    case Rule::kExactRepository: {
      auto expected = parseWritten(identity.reference);
      ok = expected && nameOf(signed_ref.ref) == nameOf(expected->ref);
      wanted = "the repository " + identity.reference + " (exactRepository)";
      break;
    }
    case Rule::kRemapIdentity: {
      const std::string name = nameOf(pulled);
      const std::string& prefix = identity.prefix;
      ImageRef remapped = pulled;
      if (name == prefix ||
          (name.size() > prefix.size() && name.compare(0, prefix.size(), prefix) == 0 &&
           name[prefix.size()] == '/')) {
        std::string rewritten = identity.signed_prefix + name.substr(prefix.size());
        auto ref = ImageRef::parse(rewritten);
        if (!ref) {
          return makeError(ErrorCode::kUntrusted,
                           "remapIdentity makes \"" + rewritten + "\", not a reference");
        }
        remapped.domain = ref->domain;
        remapped.repository = ref->repository;
      }
      ok = repoDigestOrExact(remapped, signed_ref);
      wanted = (remapped.tag ? "exactly " + remapped.str() : "the repository " + nameOf(remapped)) +
               " (remapIdentity)";
      break;
    }
  }
  if (!ok) {
    return makeError(ErrorCode::kUntrusted, "the signature is for \"" +
                                                std::string(signed_reference) +
                                                "\", the policy wants " + wanted);
  }
  return {};
}

Status checkUnnamedIdentity(const SignedIdentity& identity, const ImageRef& pulled) {
  if (identity.rule == Rule::kMatchExact || identity.rule == Rule::kExactReference ||
      identity.rule == Rule::kExactRepository) {
    const std::string name = identity.rule == Rule::kMatchExact       ? "matchExact"
                             : identity.rule == Rule::kExactReference ? "exactReference"
                                                                      : "exactRepository";
    return makeError(ErrorCode::kUntrusted,
                     "the signature names no reference (a Sigstore bundle signs the digest "
                     "only), and the policy's signedIdentity " +
                         name + " wants one");
  }
  if (!pulled.digest)
    return makeError(ErrorCode::kUntrusted,
                     "the signature names no repository (a Sigstore bundle signs the digest "
                     "only), so it stands only for an image pulled by digest; pulled by tag, "
                     "the registry chooses the digest. Pin the digest in the site's image, or "
                     "sign with legacy signatures too (cosign sign --new-bundle-format=false)");
  return {};
}

}  // namespace pullagent::puller
