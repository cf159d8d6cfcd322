#pragma once

#include <array>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/error.h"
#include "puller/oci/digest.h"
#include "puller/reference/reference.h"
#include "puller/trust/certificate.h"
#include "puller/trust/revocation.h"

namespace pullagent::puller {

// The checks of a Notary Project verification, in the order they run.
enum class NotationCheck { kIntegrity, kAuthenticity, kAuthenticTimestamp, kExpiry, kRevocation };
inline constexpr size_t kNotationChecks = 5;
std::string_view notationCheckName(NotationCheck check);  // "authenticTimestamp"

// What a failed check does: fail the signature, be logged, or not run at all.
enum class CheckAction { kEnforce, kLog, kSkip };

// A distinguished name as a trusted identity writes it ("C=US, ST=WA, O=Example"): attribute
// short names and values, each attribute at most once.
using DistinguishedName = std::vector<std::pair<std::string, std::string>>;

// One statement of trustpolicy.json: the repositories it covers and how their signatures are
// verified.
struct NotationTrustPolicy {
  std::string name;
  std::vector<std::string> scopes;  // "registry/repository", or "*" alone
  std::string level;                // strict, permissive, audit, skip
  std::array<CheckAction, kNotationChecks> actions{};
  bool skip = false;  // level skip: no signature is read at all
  // With tsa trust stores: verify the signature's timestamp always (the default), or only once
  // a certificate of its chain expired ("afterCertExpiry").
  bool timestamp_always = true;
  // Certificates of the named trust stores, by type.
  CertificateChain ca;
  CertificateChain signing_authority;
  CertificateChain tsa;
  bool any_identity = false;  // "*"
  std::vector<DistinguishedName> identities;
  std::string where;  // "notation trust policy /etc/…/trustpolicy.json: trustPolicies[0] (name)"

  CheckAction action(NotationCheck check) const { return actions[static_cast<size_t>(check)]; }
};

// A Notation configuration directory as the notation CLI keeps it (~/.config/notation):
//   trustpolicy.json                             the trust policy, version 1.0
//   truststore/x509/{ca,signingAuthority,tsa}/<name>/<files>
// so that a user's existing files work unchanged. Read when the agent config is: every error
// (JSON, a rule of the format, a trust store that is missing, a symbolic link, a file that is
// not a certificate, a certificate that is neither a CA nor self-signed) is a config error
// naming the JSON path or the file.
class NotationPolicy {
 public:
  static Result<NotationPolicy> load(const std::filesystem::path& directory);
  // `document` names the text in errors; trust stores are read under `trust_store`.
  static Result<NotationPolicy> parse(std::string_view text, const std::string& document,
                                      const std::filesystem::path& trust_store);

  // The statement whose scopes name the image's repository, else the one with "*", else none
  // (Notation refuses an image no statement covers).
  const NotationTrustPolicy* policyFor(const ImageRef& ref) const;
  // The sha256 of the policy file and every trust store file it reads (names and bytes).
  const Digest& hash() const { return hash_; }
  const std::string& document() const { return document_; }
  // The revocation answers of this policy's verifications (and of its copies): a policy lives
  // from one (re)load of the config to the next, so a reload asks afresh.
  RevocationCache& revocationCache() const { return *revocation_cache_; }

 private:
  std::string document_;
  std::vector<NotationTrustPolicy> policies_;
  Digest hash_;
  std::shared_ptr<RevocationCache> revocation_cache_ = std::make_shared<RevocationCache>();
};

// "x509.subject: C=US, ST=WA, O=Example" without its prefix, parsed as RFC 4514 writes it
// (backslash escapes, no multi-valued RDNs). Errors name what is wrong.
Result<DistinguishedName> parseDistinguishedName(std::string_view text);
// A signing certificate's subject as Notation compares it: nullopt when Notation cannot read it
// (an attribute outside C, ST, L, STREET, POSTALCODE, O, OU, CN, SERIALNUMBER, or one other
// than CN given twice), which no trusted identity then matches.
std::optional<DistinguishedName> leafIdentity(
    const std::vector<std::pair<std::string, std::string>>& attributes);
// Whether every attribute of `trusted` has the same value in `subject` (case-sensitive,
// in any order).
bool identityMatches(const DistinguishedName& trusted, const DistinguishedName& subject);

}  // namespace pullagent::puller
