#include "puller/trust/notation_policy.h"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <set>

#include "base/bounded_read.h"
#include "base/json_reader.h"
#include "puller/oci/sha256.h"

namespace pullagent::puller {
namespace {

constexpr size_t kMaxTrustPolicyBytes = 1 << 20;
constexpr size_t kMaxStoreFiles = 256;

using Actions = std::array<CheckAction, kNotationChecks>;
constexpr CheckAction E = CheckAction::kEnforce;
constexpr CheckAction L = CheckAction::kLog;
constexpr CheckAction S = CheckAction::kSkip;

// The levels of the Notary Project's trust policy (trust-store-trust-policy.md), checks in
// the order integrity, authenticity, authenticTimestamp, expiry, revocation.
Result<Actions> levelActions(std::string_view level) {
  if (level == "strict")
    return Actions{E, E, E, E, E};
  if (level == "permissive")
    return Actions{E, E, L, L, L};
  if (level == "audit")
    return Actions{E, L, L, L, L};
  if (level == "skip")
    return Actions{S, S, S, S, S};
  return makeError(ErrorCode::kInvalidArgument, "");
}

std::string lowercaseHost(std::string host) {
  for (char& c : host)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return host;
}

bool isLink(const std::filesystem::path& path) {
  struct stat info {};
  return ::lstat(path.c_str(), &info) == 0 && S_ISLNK(info.st_mode);
}

// The certificates of one named trust store, every regular file of its directory. Notation
// refuses symbolic links there (a link would let whoever owns its target decide what the host
// trusts); so does this, at every level under the trust store's root.
Result<CertificateChain> readStore(const std::filesystem::path& root, const std::string& type,
                                   const std::string& name, const JsonReader& at, Sha256& hasher) {
  const auto x509 = root / "x509";
  const auto directory = x509 / type / name;
  for (const auto& path : {root, x509, x509 / type, directory}) {
    if (isLink(path))
      return at.error("the trust store path " + path.string() +
                      " is a symbolic link, which Notation refuses");
  }
  std::error_code error;
  if (!std::filesystem::is_directory(directory, error))
    return at.error("the trust store " + directory.string() + " does not exist");
  std::vector<std::filesystem::path> files;
  for (auto it = std::filesystem::directory_iterator(directory, error);
       !error && it != std::filesystem::directory_iterator(); it.increment(error)) {
    if (files.size() == kMaxStoreFiles)
      return at.error("the trust store " + directory.string() + " has more than " +
                      std::to_string(kMaxStoreFiles) + " files");
    files.push_back(it->path());
  }
  if (error)
    return at.error("the trust store " + directory.string() +
                    " cannot be read: " + error.message());
  std::sort(files.begin(), files.end());
  CertificateChain certificates;
  for (const auto& file : files) {
    if (isLink(file))
      return at.error("the trust store file " + file.string() +
                      " is a symbolic link, which Notation refuses");
    auto bytes = readRegularFile(file, 1 << 20, Links::kRefuse);
    if (!bytes)
      return at.error("the trust store file " + file.string() + ": " + bytes.error().message);
    auto parsed = Certificate::fromFile(*bytes);
    if (!parsed)
      return at.error("the trust store file " + file.string() + ": " + parsed.error().message);
    for (const auto& certificate : *parsed) {
      // What Notation admits to a trust store: CAs that issue signing certificates, or a
      // self-signed signing certificate itself; a tsa store holds roots.
      if (!certificate->isCa() && !certificate->selfSigned())
        return at.error("the trust store file " + file.string() + ": \"" + certificate->subject() +
                        "\" is neither a CA certificate nor a self-signed signing certificate");
      if (type == "tsa" && !certificate->selfSigned())
        return at.error("the trust store file " + file.string() + ": \"" + certificate->subject() +
                        "\" is not a root, which a tsa store holds");
    }
    hasher.update(file.filename().string());
    hasher.update(std::string(1, '\0'));
    hasher.update(*bytes);
    certificates.insert(certificates.end(), parsed->begin(), parsed->end());
  }
  if (certificates.empty())
    return at.error("the trust store " + directory.string() + " holds no certificate");
  return certificates;
}

// A registry scope as Notation writes it: "registry/repository" (no tag, no digest) or "*".
Status checkRegistryScope(const JsonReader& at, const std::string& scope) {
  const auto slash = scope.find('/');
  if (slash == std::string::npos || !isValidRegistryDomain(scope.substr(0, slash)) ||
      !isValidRepositoryName(scope.substr(slash + 1)))
    return at.error("\"" + scope.substr(0, 200) +
                    "\" is not \"*\" nor a repository (registry/repository, no tag or digest)");
  return {};
}

Status readOverrides(const JsonReader& at, Actions& actions) {
  if (at.missing())
    return {};
  ASSIGN_OR_RETURN(auto members, at.members());
  for (const auto& [key, value] : members) {
    size_t index = kNotationChecks;
    for (size_t i = 0; i < kNotationChecks; ++i) {
      if (key == notationCheckName(static_cast<NotationCheck>(i)))
        index = i;
    }
    if (index == kNotationChecks)
      return value.error(
          "not a check (integrity, authenticity, authenticTimestamp, expiry, revocation)");
    ASSIGN_OR_RETURN(auto action, value.string());
    CheckAction chosen;
    if (action == "enforce")
      chosen = E;
    else if (action == "log")
      chosen = L;
    else if (action == "skip")
      chosen = S;
    else
      return value.error("expected enforce, log or skip, got \"" + action.substr(0, 40) + "\"");
    const auto check = static_cast<NotationCheck>(index);
    if (check == NotationCheck::kIntegrity)
      return value.error("integrity cannot be overridden");
    // As notation-go: only revocation may be skipped alone.
    if (check != NotationCheck::kRevocation && chosen == S)
      return value.error(std::string(notationCheckName(check)) +
                         " can be enforced or logged, not skipped");
    actions[index] = chosen;
  }
  return {};
}

Result<NotationTrustPolicy> readStatement(const JsonReader& at, const std::string& document,
                                          const std::filesystem::path& trust_store,
                                          Sha256& hasher) {
  RETURN_IF_ERROR(at.onlyKeys(
      {"name", "registryScopes", "signatureVerification", "trustStores", "trustedIdentities"}));
  NotationTrustPolicy policy;
  ASSIGN_OR_RETURN(policy.name, at["name"].string());
  if (policy.name.empty())
    return at["name"].error("is empty");
  policy.where = document + ": " + at.path() + " (" + policy.name.substr(0, 80) + ")";
  ASSIGN_OR_RETURN(auto scopes, at["registryScopes"].elements());
  if (scopes.empty())
    return at["registryScopes"].error("is empty");
  for (const auto& scope : scopes) {
    ASSIGN_OR_RETURN(auto text, scope.string());
    if (text != "*") {
      RETURN_IF_ERROR(checkRegistryScope(scope, text));
      // Host names are compared without case ("Registry.corp" is registry.corp).
      const auto slash = text.find('/');
      text = lowercaseHost(text.substr(0, slash)) + text.substr(slash);
    }
    if (std::find(policy.scopes.begin(), policy.scopes.end(), text) != policy.scopes.end())
      return scope.error("\"" + text + "\" is listed twice");
    policy.scopes.push_back(std::move(text));
  }
  if (policy.scopes.size() > 1 &&
      std::find(policy.scopes.begin(), policy.scopes.end(), "*") != policy.scopes.end())
    return at["registryScopes"].error("\"*\" must be the only scope of its statement");

  const JsonReader verification = at["signatureVerification"];
  RETURN_IF_ERROR(verification.onlyKeys({"level", "override", "verifyTimestamp"}));
  ASSIGN_OR_RETURN(policy.level, verification["level"].string());
  auto actions = levelActions(policy.level);
  if (!actions)
    return verification["level"].error("expected strict, permissive, audit or skip, got \"" +
                                       policy.level.substr(0, 40) + "\"");
  policy.actions = *actions;
  policy.skip = policy.level == "skip";
  if (policy.skip && !verification["override"].missing())
    return verification["override"].error("a statement whose level is skip has no checks");
  RETURN_IF_ERROR(readOverrides(verification["override"], policy.actions));
  ASSIGN_OR_RETURN(auto timestamp, verification["verifyTimestamp"].optionalString());
  if (timestamp && !timestamp->empty() && *timestamp != "always" && *timestamp != "afterCertExpiry")
    return verification["verifyTimestamp"].error("expected always or afterCertExpiry");
  policy.timestamp_always = !timestamp || *timestamp != "afterCertExpiry";

  ASSIGN_OR_RETURN(auto stores, at["trustStores"].optionalStrings());
  ASSIGN_OR_RETURN(auto identities, at["trustedIdentities"].optionalStrings());
  if (policy.skip) {
    if (!stores.empty() || !identities.empty())
      return at.error(
          "its level is skip, yet it names trust stores or trusted identities: remove them");
    return policy;
  }
  if (stores.empty() || identities.empty())
    return at.error(
        "trustStores and trustedIdentities are both required unless the level is "
        "skip");
  for (size_t i = 0; i < stores.size(); ++i) {
    const JsonReader store_at = at["trustStores"][i];
    const auto colon = stores[i].find(':');
    const std::string type = stores[i].substr(0, colon);
    const std::string name = colon == std::string::npos ? "" : stores[i].substr(colon + 1);
    // Names as notation-go admits them: ^[a-zA-Z0-9_.-]+$ ("." and ".." would leave the type's
    // directory).
    const bool good_name =
        !name.empty() && name != "." && name != ".." &&
        std::all_of(name.begin(), name.end(), [](char c) {
          return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
        });
    if ((type != "ca" && type != "signingAuthority" && type != "tsa") || !good_name)
      return store_at.error("expected ca:<name>, signingAuthority:<name> or tsa:<name>, got \"" +
                            stores[i].substr(0, 80) + "\"");
    ASSIGN_OR_RETURN(auto certificates, readStore(trust_store, type, name, store_at, hasher));
    auto& into = type == "ca" ? policy.ca : type == "tsa" ? policy.tsa : policy.signing_authority;
    into.insert(into.end(), certificates.begin(), certificates.end());
  }
  if (policy.ca.empty() && policy.signing_authority.empty())
    return at["trustStores"].error("names no ca or signingAuthority trust store");
  for (size_t i = 0; i < identities.size(); ++i) {
    const JsonReader identity_at = at["trustedIdentities"][i];
    if (identities[i] == "*") {
      if (identities.size() > 1)
        return identity_at.error("\"*\" must be the only trusted identity of its statement");
      policy.any_identity = true;
      continue;
    }
    constexpr std::string_view kPrefix = "x509.subject:";
    if (!identities[i].starts_with(kPrefix))
      return identity_at.error("expected \"*\" or \"x509.subject: <distinguished name>\"");
    auto name = parseDistinguishedName(std::string_view(identities[i]).substr(kPrefix.size()));
    if (!name)
      return identity_at.error(name.error().message);
    for (std::string_view required : {"C", "ST", "O"}) {
      if (std::none_of(name->begin(), name->end(),
                       [&](const auto& attribute) { return attribute.first == required; }))
        return identity_at.error("the distinguished name has no " + std::string(required) +
                                 " (C, ST and O are required)");
    }
    // Notation refuses identities of which one covers the other (one would never decide).
    for (const auto& other : policy.identities) {
      if (identityMatches(other, *name) || identityMatches(*name, other))
        return identity_at.error("overlaps another trusted identity of its statement");
    }
    policy.identities.push_back(std::move(name).value());
  }
  return policy;
}

std::string trimmed(std::string_view text) {
  while (!text.empty() && text.front() == ' ')
    text.remove_prefix(1);
  while (!text.empty() && text.back() == ' ')
    text.remove_suffix(1);
  return std::string(text);
}

}  // namespace

std::string_view notationCheckName(NotationCheck check) {
  switch (check) {
    case NotationCheck::kIntegrity:
      return "integrity";
    case NotationCheck::kAuthenticity:
      return "authenticity";
    case NotationCheck::kAuthenticTimestamp:
      return "authenticTimestamp";
    case NotationCheck::kExpiry:
      return "expiry";
    case NotationCheck::kRevocation:
      return "revocation";
  }
  return "?";
}

Result<DistinguishedName> parseDistinguishedName(std::string_view text) {
  DistinguishedName name;
  std::string type;
  std::string value;
  bool in_value = false;
  auto finish = [&]() -> Status {
    std::string key = trimmed(type);
    if (key == "S")
      key = "ST";  // as go-ldap reads it
    std::string val = trimmed(value);
    if (key.empty() || val.empty())
      return makeError(ErrorCode::kInvalidArgument,
                       "an attribute without a type or a value in the distinguished name");
    for (const auto& [existing, unused] : name) {
      if (existing == key)
        return makeError(ErrorCode::kInvalidArgument,
                         "the attribute " + key + " occurs twice in the distinguished name");
    }
    name.emplace_back(std::move(key), std::move(val));
    type.clear();
    value.clear();
    in_value = false;
    return {};
  };
  if (text.find("=#") != std::string_view::npos)
    return makeError(ErrorCode::kInvalidArgument,
                     "hex-encoded values (\"=#\") are not supported in a trusted identity");
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (!in_value) {
      if (c == '=')
        in_value = true;
      else if (c == ',' || c == ';' || c == '+' || c == '\\')
        return makeError(ErrorCode::kInvalidArgument,
                         "the distinguished name has an attribute without a value");
      else
        type += c;
      continue;
    }
    if (c == '\\') {
      if (i + 1 == text.size())
        return makeError(ErrorCode::kInvalidArgument, "the distinguished name ends in a backslash");
      // "\\," escapes the character; "\\4A" is the byte 0x4A (RFC 4514).
      if (i + 2 < text.size() && std::isxdigit(static_cast<unsigned char>(text[i + 1])) &&
          std::isxdigit(static_cast<unsigned char>(text[i + 2]))) {
        value += static_cast<char>(std::stoi(std::string(text.substr(i + 1, 2)), nullptr, 16));
        i += 2;
      } else {
        value += text[++i];
      }
    } else if (c == ',' || c == ';') {
      RETURN_IF_ERROR(finish());
    } else if (c == '+') {
      return makeError(ErrorCode::kInvalidArgument,
                       "multi-valued RDNs (\"+\") are not supported in a trusted identity");
    } else {
      value += c;
    }
  }
  if (!in_value)
    return makeError(ErrorCode::kInvalidArgument,
                     type.empty() ? "the distinguished name is empty or ends in a comma"
                                  : "the distinguished name has an attribute without a value");
  RETURN_IF_ERROR(finish());
  return name;
}

std::optional<DistinguishedName> leafIdentity(
    const std::vector<std::pair<std::string, std::string>>& attributes) {
  // OpenSSL's short names, and the names Go's pkix prints for them; any other attribute Go
  // prints as "<oid>=#<hex>", which Notation then fails to read.
  static const std::vector<std::pair<std::string_view, std::string_view>> kNames{
      {"C", "C"},
      {"ST", "ST"},
      {"L", "L"},
      {"street", "STREET"},
      {"postalCode", "POSTALCODE"},
      {"O", "O"},
      {"OU", "OU"},
      {"CN", "CN"},
      {"serialNumber", "SERIALNUMBER"}};
  DistinguishedName name;
  for (const auto& attribute : attributes) {
    const std::string& short_name = attribute.first;
    const std::string& value = attribute.second;
    const auto known = std::find_if(kNames.begin(), kNames.end(),
                                    [&](const auto& entry) { return entry.first == short_name; });
    if (known == kNames.end())
      return std::nullopt;
    const std::string type(known->second);
    auto existing = std::find_if(name.begin(), name.end(),
                                 [&](const auto& entry) { return entry.first == type; });
    if (existing != name.end()) {
      if (type != "CN")
        return std::nullopt;     // two values: a multi-valued attribute to Notation
      existing->second = value;  // the last CN, as Go's pkix keeps it
      continue;
    }
    name.emplace_back(type, value);
  }
  return name;
}

bool identityMatches(const DistinguishedName& trusted, const DistinguishedName& subject) {
  for (const auto& wanted : trusted) {
    const auto found = std::find_if(subject.begin(), subject.end(), [&](const auto& attribute) {
      return attribute.first == wanted.first;
    });
    if (found == subject.end() || found->second != wanted.second)
      return false;
  }
  return true;
}

Result<NotationPolicy> NotationPolicy::load(const std::filesystem::path& directory) {
  // notation 1.2 and later read trustpolicy.oci.json first, the older name only without it.
  auto path = directory / "trustpolicy.oci.json";
  std::error_code error;
  if (!std::filesystem::exists(std::filesystem::symlink_status(path, error)))
    path = directory / "trustpolicy.json";
  const std::string document = "notation trust policy " + path.string();
  auto text = readRegularFile(path, kMaxTrustPolicyBytes, Links::kFollow);
  if (!text)
    return text.error().context(document);
  return parse(*text, document, directory / "truststore");
}

Result<NotationPolicy> NotationPolicy::parse(std::string_view text, const std::string& document,
                                             const std::filesystem::path& trust_store) {
  ASSIGN_OR_RETURN(auto doc, parseJson(text, document, ErrorCode::kInvalidArgument, 16));
  const JsonReader root(doc, document, ErrorCode::kInvalidArgument);
  if (!root.isObject())
    return root.typeError("an object");
  RETURN_IF_ERROR(root.onlyKeys({"version", "trustPolicies"}));
  ASSIGN_OR_RETURN(auto version, root["version"].string());
  if (version != "1.0")
    return root["version"].error("this agent reads version \"1.0\", got \"" +
                                 version.substr(0, 20) + "\"");
  NotationPolicy policy;
  policy.document_ = document;
  Sha256 hasher;
  hasher.update(text);
  ASSIGN_OR_RETURN(auto statements, root["trustPolicies"].elements());
  if (statements.empty())
    return root["trustPolicies"].error("is empty");
  std::set<std::string> names;
  std::set<std::string> scopes;
  for (const auto& statement : statements) {
    ASSIGN_OR_RETURN(auto parsed, readStatement(statement, document, trust_store, hasher));
    if (!names.insert(parsed.name).second)
      return statement["name"].error("\"" + parsed.name.substr(0, 80) + "\" names two statements");
    for (size_t i = 0; i < parsed.scopes.size(); ++i) {
      if (!scopes.insert(parsed.scopes[i]).second)
        return statement["registryScopes"][i].error("\"" + parsed.scopes[i] +
                                                    "\" is the scope of another statement too");
    }
    policy.policies_.push_back(std::move(parsed));
  }
  policy.hash_ = hasher.finish();
  return policy;
}

const NotationTrustPolicy* NotationPolicy::policyFor(const ImageRef& ref) const {
  const std::string repository = lowercaseHost(ref.domain) + "/" + ref.repository;
  const NotationTrustPolicy* wildcard = nullptr;
  for (const auto& policy : policies_) {
    for (const auto& scope : policy.scopes) {
      if (scope == repository)
        return &policy;
      if (scope == "*")
        wildcard = &policy;
    }
  }
  return wildcard;
}

}  // namespace pullagent::puller
