#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "puller/oci/digest.h"
#include "puller/reference/reference.h"
#include "puller/trust/public_key.h"

namespace pullagent::puller {

// How a signature's docker-reference must relate to the image pulled (containers-policy.json(5),
// "signedIdentity").
struct SignedIdentity {
  enum class Rule {
    kMatchExact,              // the same repository and the same tag (or digest)
    kMatchRepoDigestOrExact,  // the default: pulled by digest, the same repository; by tag, the
                              // same repository and tag
    kMatchRepository,         // the same repository, any tag
    kExactReference,          // exactly `reference`
    kExactRepository,         // `reference` is a repository: the same one
    kRemapIdentity,           // the image's `prefix` replaced by `signed_prefix`, then the default
  };
  Rule rule = Rule::kMatchRepoDigestOrExact;
  std::string reference;  // kExactReference, kExactRepository
  std::string prefix;     // kRemapIdentity
  std::string signed_prefix;
};

struct PolicyRequirement {
  enum class Type {
    kInsecureAcceptAnything,
    kReject,
    kSigstoreSigned,
    // A requirement of the format this agent does not check yet (signedBy: GPG; sigstoreSigned
    // keyless with fulcio): an image under it is refused, saying so, rather than the whole file.
    kUnsupported,
  };
  Type type = Type::kReject;
  std::vector<std::shared_ptr<const PublicKey>> keys;  // kSigstoreSigned: any one may sign
  SignedIdentity identity;
  std::string unsupported;  // kUnsupported: what, and what to use instead
  std::string where;        // "containers policy /etc/…/policy.json: default[0]"
};

// The requirements an image falls under, and the scope that chose them.
struct PolicyScope {
  std::string name;  // "myreg.azurecr.io/app", "docker transport default", "default"
  const std::vector<PolicyRequirement>* requirements = nullptr;
};

// containers-policy.json(5), as podman, skopeo and CRI-O read it, for the docker transport:
//   {"default": [requirement…],
//    "transports": {"docker": {"<scope>": [requirement…], …}, …}}
// Requirements: insecureAcceptAnything, reject, sigstoreSigned (keyPath | keyPaths | keyData,
// signedIdentity), and signedBy (GPG; read, and refused at pull time as not supported). Scopes
// of the docker transport, most specific first: "reg/ns/repo:tag" or "reg/ns/repo@digest",
// "reg/ns/repo", "reg/ns", "reg", "*.sub.example.com" wildcards from the longest, then "" (the
// transport's default), then "default". Other transports are ignored (they do not pull from
// registries). Keys are read when the file is: an unreadable key is a config error, naming the
// JSON path and the file.
class ContainersPolicy {
 public:
  static Result<ContainersPolicy> load(const std::filesystem::path& path);
  // `document` names the text in errors ("containers policy /etc/containers/policy.json").
  static Result<ContainersPolicy> parse(std::string_view text, const std::string& document);

  PolicyScope scopeFor(const ImageRef& ref) const;
  // The sha256 of the file and of every key it names: a verdict taken under one hash holds
  // until the hash changes.
  const Digest& hash() const { return hash_; }
  const std::string& document() const { return document_; }

 private:
  std::string document_;
  Digest hash_;
  std::vector<PolicyRequirement> default_;
  std::map<std::string, std::vector<PolicyRequirement>, std::less<>> docker_;
};

// Whether a signature that names `signed_reference` may stand for `pulled` under `identity`.
// Errors (kUntrusted) say which reference was expected.
Status checkSignedIdentity(const SignedIdentity& identity, const ImageRef& pulled,
                           std::string_view signed_reference);

// Whether a signature that names no reference at all (a cosign v3 bundle signs the digest
// only) may stand for `pulled` under `identity`. It cannot bind the image to a repository, so it
// stands only for an image pulled by digest, where the site (not the registry) chose the bytes,
// and only under the rules that ask for no more than the image's own repository
// (matchRepoDigestOrExact, the default; matchRepository; remapIdentity). Pulled by tag, the
// registry chooses the digest, and a digest another repository's image was signed for under the
// same key would pass; the rules that pin a reference (matchExact, exactReference,
// exactRepository) want a name the signature does not have. Errors (kUntrusted) say which.
Status checkUnnamedIdentity(const SignedIdentity& identity, const ImageRef& pulled);

}  // namespace pullagent::puller
