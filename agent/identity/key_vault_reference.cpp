#include "agent/identity/key_vault_reference.h"

#include <algorithm>
#include <cctype>
#include <map>

#include "base/redact.h"
#include "puller/http/url.h"

namespace pullagent::agent {
namespace {

constexpr std::string_view kPrefix = "@Microsoft.KeyVault(";

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

// Vault names: 3-24 characters, letters, digits and dashes (Azure's rule).
bool validVaultName(std::string_view name) {
  return name.size() >= 3 && name.size() <= 24 && std::all_of(name.begin(), name.end(), [](char c) {
           return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-';
         });
}

// Secret names and versions: letters, digits and dashes.
bool validSegment(std::string_view text) {
  return !text.empty() && text.size() <= 127 && std::all_of(text.begin(), text.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-';
  });
}

Error invalid(std::string why) {
  // The reference text is not secret, but keep the message short and about the syntax.
  return makeError(ErrorCode::kInvalidArgument, "invalid Key Vault reference: " + std::move(why));
}

// Key Vault's DNS suffix in the public cloud, the one whose audience (https://vault.azure.net)
// the token is asked for: the site's identity token for Key Vault goes to the SecretUri's host,
// and a host that is no vault there (a typo, a pasted URL, another cloud's vault) must not
// receive it. A private endpoint keeps the vault's name (privatelink CNAMEs it).
constexpr std::string_view kVaultSuffix = ".vault.azure.net";

// One DNS label: the vault's name before the suffix (no dots: a.b.vault.azure.net is no vault).
bool validLabel(std::string_view name) {
  return !name.empty() && name.size() <= 63 && std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-';
  });
}

}  // namespace

bool isKeyVaultHost(std::string_view host) {
  return host.size() > kVaultSuffix.size() &&
         equalsIgnoreCase(host.substr(host.size() - kVaultSuffix.size()), kVaultSuffix) &&
         validLabel(host.substr(0, host.size() - kVaultSuffix.size()));
}

namespace {

Result<KeyVaultReference> fromSecretUri(std::string_view uri) {
  if (!uri.starts_with("https://"))
    return invalid("SecretUri must be an https:// URL");
  std::string_view rest = uri.substr(8);
  auto slash = rest.find('/');
  if (slash == std::string_view::npos)
    return invalid("SecretUri has no /secrets/ path");
  std::string_view host = rest.substr(0, slash);
  std::string_view path = rest.substr(slash);
  if (host.empty() || host.find_first_of("@?#") != std::string_view::npos) {
    return invalid("SecretUri has a bad host");
  }
  // The authority as the HTTP client will read it (a port, if any, valid): its host must be a
  // vault.
  auto authority = puller::Url::parse("https://" + std::string(host) + "/");
  if (!authority || !isKeyVaultHost(authority->host))
    return invalid("SecretUri's host " + safeQuoted(host, 80) +
                   " is not a Key Vault (<name>.vault.azure.net): the site's Key Vault token "
                   "goes only to a vault");
  if (!path.starts_with("/secrets/"))
    return invalid("SecretUri path must start with /secrets/");
  path.remove_prefix(9);
  while (path.ends_with("/"))
    path.remove_suffix(1);
  KeyVaultReference ref;
  ref.vault_url = "https://" + std::string(host);
  auto next = path.find('/');
  ref.secret_name = std::string(path.substr(0, next));
  if (next != std::string_view::npos)
    ref.version = std::string(path.substr(next + 1));
  if (!validSegment(ref.secret_name))
    return invalid("bad secret name in SecretUri");
  if (ref.version && !validSegment(*ref.version))
    return invalid("bad secret version in SecretUri");
  return ref;
}

}  // namespace

std::string KeyVaultReference::secretUrl() const {
  return vault_url + "/secrets/" + secret_name + (version ? "/" + *version : "") +
         "?api-version=7.4";
}

Result<std::optional<KeyVaultReference>> parseKeyVaultReference(std::string_view value) {
  std::string_view text = value;
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front())))
    text.remove_prefix(1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())))
    text.remove_suffix(1);
  if (text.size() < kPrefix.size() || !equalsIgnoreCase(text.substr(0, kPrefix.size()), kPrefix)) {
    return std::optional<KeyVaultReference>();
  }
  if (!text.ends_with(")"))
    return invalid("missing the closing parenthesis");
  std::string_view body = text.substr(kPrefix.size(), text.size() - kPrefix.size() - 1);

  std::map<std::string, std::string> fields;  // keys lowercase
  size_t start = 0;
  while (start <= body.size()) {
    auto semicolon = body.find(';', start);
    auto item =
        body.substr(start, semicolon == std::string_view::npos ? body.npos : semicolon - start);
    if (!item.empty()) {
      auto eq = item.find('=');
      if (eq == std::string_view::npos)
        return invalid("\"" + std::string(item) + "\" is not Key=Value");
      std::string key(item.substr(0, eq));
      std::transform(key.begin(), key.end(), key.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      if (!fields.emplace(key, std::string(item.substr(eq + 1))).second) {
        return invalid("\"" + key + "\" given twice");
      }
    }
    if (semicolon == std::string_view::npos)
      break;
    start = semicolon + 1;
  }

  if (auto uri = fields.find("secreturi"); uri != fields.end()) {
    if (fields.size() != 1)
      return invalid("SecretUri cannot be combined with other fields");
    ASSIGN_OR_RETURN(auto ref, fromSecretUri(uri->second));
    return std::optional<KeyVaultReference>(ref);
  }
  auto vault = fields.find("vaultname");
  auto secret = fields.find("secretname");
  if (vault == fields.end() || secret == fields.end()) {
    return invalid("needs SecretUri=..., or VaultName=...;SecretName=...");
  }
  for (const auto& [key, _] : fields) {
    if (key != "vaultname" && key != "secretname" && key != "secretversion") {
      return invalid("unknown field \"" + key + "\"");
    }
  }
  if (!validVaultName(vault->second))
    return invalid("bad VaultName \"" + vault->second + "\"");
  if (!validSegment(secret->second))
    return invalid("bad SecretName \"" + secret->second + "\"");
  KeyVaultReference ref;
  // Public cloud suffix; sovereign clouds are not known to App Service references (protocols §10).
  ref.vault_url = "https://" + vault->second + ".vault.azure.net";
  ref.secret_name = secret->second;
  if (auto version = fields.find("secretversion");
      version != fields.end() && !version->second.empty()) {
    if (!validSegment(version->second))
      return invalid("bad SecretVersion");
    ref.version = version->second;
  }
  return std::optional<KeyVaultReference>(ref);
}

}  // namespace pullagent::agent
