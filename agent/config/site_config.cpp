#include "agent/config/site_config.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <nlohmann/json.hpp>

#include "base/json_reader.h"
#include "base/redact.h"
#include "resolver/dns_servers.h"

namespace pullagent::agent {
namespace {

using nlohmann::json;

std::string upper(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  return out;
}

Error typeError(const std::string& path, const char* want, const json& value) {
  return makeError(ErrorCode::kInvalidArgument,
                   path + ": expected " + want + ", got " + previewJson(value));
}

// App settings may hold secrets (DOCKER_REGISTRY_SERVER_PASSWORD): their errors name the type of
// what was found, never its content.
Error settingTypeError(const std::string& path, const char* want, const json& value) {
  return makeError(
      ErrorCode::kInvalidArgument,
      path + ": expected " + want + ", got " +
          (value.is_null() ? "null" : "a value of type " + std::string(value.type_name())));
}

Result<std::optional<std::string>> optionalString(const json& object, const char* key,
                                                  const std::string& path) {
  if (!object.contains(key) || object[key].is_null())
    return std::optional<std::string>();
  if (!object[key].is_string())
    return typeError(path + "." + key, "a string", object[key]);
  return std::optional<std::string>(object[key].get<std::string>());
}

Result<std::optional<bool>> optionalBool(const json& object, const char* key,
                                         const std::string& path) {
  if (!object.contains(key) || object[key].is_null())
    return std::optional<bool>();
  const json& value = object[key];
  if (value.is_boolean())
    return std::optional<bool>(value.get<bool>());
  if (value.is_string()) {  // some tools write booleans as strings
    std::string text = upper(value.get<std::string>());
    if (text == "TRUE")
      return std::optional<bool>(true);
    if (text == "FALSE")
      return std::optional<bool>(false);
  }
  return typeError(path + "." + key, "true or false", value);
}

using Settings =
    std::map<std::string, std::pair<std::string, std::string>>;  // UPPER -> (path, value)

Result<Settings> readAppSettings(const json& value, const std::string& path) {
  Settings settings;
  auto add = [&](const std::string& name, const json& item,
                 const std::string& item_path) -> Status {
    if (!item.is_string() && !item.is_null())
      return settingTypeError(item_path, "a string", item);
    if (!settings
             .emplace(upper(name),
                      std::pair{item_path, item.is_string() ? item.get<std::string>() : ""})
             .second) {
      return makeError(ErrorCode::kInvalidArgument,
                       item_path + ": app setting " + safeQuoted(name) + " is given twice");
    }
    return {};
  };
  if (value.is_object()) {
    for (const auto& [name, item] : value.items()) {
      RETURN_IF_ERROR(add(name, item, path + "." + name));
    }
    return settings;
  }
  if (!value.is_array())
    return settingTypeError(path, "an array of {name, value} or an object", value);
  for (size_t i = 0; i < value.size(); ++i) {
    const std::string item_path = path + "[" + std::to_string(i) + "]";
    const json& item = value[i];
    if (!item.is_object())
      return settingTypeError(item_path, "an object with name and value", item);
    ASSIGN_OR_RETURN(auto name, optionalString(item, "name", item_path));
    if (!name || name->empty())
      return makeError(ErrorCode::kInvalidArgument, item_path + ".name: missing");
    if (auto status =
            add(*name, item.contains("value") ? item["value"] : json(), item_path + ".value");
        !status) {
      return status.error();
    }
  }
  return settings;
}

std::optional<std::string> setting(const Settings& settings, const std::string& name) {
  auto it = settings.find(name);
  if (it == settings.end() || it->second.second.empty())
    return std::nullopt;
  return it->second.second;
}

Result<SettingValue> settingValue(const Settings& settings, const std::string& name) {
  const auto& [path, value] = settings.at(name);
  auto reference = parseKeyVaultReference(value);
  if (!reference)
    return reference.error().context(path);
  return SettingValue{Secret(value), reference.value()};
}

// DOCKER_REGISTRY_SERVER_URL is a URL ("https://myreg.azurecr.io", "https://index.docker.io/v1/")
// but a bare host is seen too.
std::string registryHostOf(std::string url) {
  if (auto scheme = url.find("://"); scheme != std::string::npos)
    url = url.substr(scheme + 3);
  url = url.substr(0, url.find('/'));
  std::transform(url.begin(), url.end(), url.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (url == "index.docker.io" || url == "registry-1.docker.io" || url == "registry.hub.docker.com")
    return "docker.io";
  return url;
}

// Docker's rule for whether the first path component names a registry.
bool hasRegistryHost(std::string_view image) {
  auto slash = image.find('/');
  if (slash == std::string_view::npos)
    return false;
  auto first = image.substr(0, slash);
  return first == "localhost" || first.find_first_of(".:") != std::string_view::npos ||
         std::any_of(first.begin(), first.end(),
                     [](char c) { return std::isupper(static_cast<unsigned char>(c)) != 0; });
}

Result<std::string> imageOf(const std::string& fx, const std::string& path) {
  auto bar = fx.find('|');
  std::string kind = upper(fx.substr(0, bar));
  if (kind == "DOCKER") {
    std::string image = fx.substr(bar + 1);
    image.erase(0, image.find_first_not_of(" \t"));
    image.erase(image.find_last_not_of(" \t") + 1);
    if (image.empty())
      return makeError(ErrorCode::kInvalidArgument,
                       path + ": " + safeQuoted(fx) + " names no image");
    return image;
  }
  std::string what;
  if (kind == "COMPOSE" || kind == "KUBE") {
    what = "multi-container (" + kind + "|) sites are not supported";
  } else if (kind == "SITECONTAINERS") {
    what = "sidecar (SITECONTAINERS) sites are not supported";
  } else if (bar != std::string::npos) {
    what = safeQuoted(fx) + " is a built-in runtime stack, not a container image";
  } else {
    what = safeQuoted(fx) + " is not a container image";
  }
  return makeError(ErrorCode::kUnsupported, path + ": " + what +
                                                "; pullagent pulls single-container sites, " +
                                                "linuxFxVersion \"DOCKER|<image>\"");
}

// Where a site document keeps its fields: ARM puts them under "properties", `az webapp show`
// flattens them; siteConfig is inside either way.
struct SiteSections {
  const json& doc;
  const json& site;
  const json& config;
  std::string site_path;    // "" or "properties"
  std::string config_path;  // "siteConfig" or "properties.siteConfig"

  std::string pathOf(const std::string& holder_path) const {
    return holder_path.empty() ? "$" : holder_path;
  }
};

std::string joinPath(const std::string& a, const char* b) {
  return a.empty() ? std::string(b) : a + "." + b;
}

// App settings: in siteConfig (ARM), beside it, or at the top (an appsettings list merged in).
Result<Settings> findAppSettings(const SiteSections& sections) {
  for (auto [holder, holder_path] :
       {std::pair<const json*, std::string>{&sections.config, sections.config_path},
        {&sections.site, sections.site_path},
        {&sections.doc, ""}}) {
    if (holder->contains("appSettings") && !(*holder)["appSettings"].is_null())
      return readAppSettings((*holder)["appSettings"], joinPath(holder_path, "appSettings"));
  }
  return Settings{};
}

// The image: linuxFxVersion's, on DOCKER_REGISTRY_SERVER_URL's registry when it names none.
Result<puller::ImageRef> resolveImage(const std::string& linux_fx_version,
                                      const std::optional<std::string>& server_host,
                                      const std::string& fx_path) {
  ASSIGN_OR_RETURN(std::string image_text, imageOf(linux_fx_version, fx_path));
  if (!hasRegistryHost(image_text) && server_host && *server_host != "docker.io")
    image_text = *server_host + "/" + image_text;
  auto image = puller::ImageRef::parse(image_text);
  if (!image)
    return image.error().context(fx_path);
  return image;
}

// Managed identity when acrUseManagedIdentityCreds, else Basic from the two app settings (both,
// and only for the registry DOCKER_REGISTRY_SERVER_URL names), else anonymous.
struct SiteCredentials {
  RegistryAuth auth = RegistryAuth::kAnonymous;
  std::string identity_client_id;
  std::optional<SettingValue> username;
  std::optional<SettingValue> password;
};

Result<SiteCredentials> readCredentials(const SiteSections& sections, const Settings& settings,
                                        const std::optional<std::string>& server_host,
                                        const puller::ImageRef& image) {
  const std::string& config_path = sections.config_path;
  ASSIGN_OR_RETURN(auto use_mi,
                   optionalBool(sections.config, "acrUseManagedIdentityCreds", config_path));
  ASSIGN_OR_RETURN(auto client_id,
                   optionalString(sections.config, "acrUserManagedIdentityID", config_path));
  SiteCredentials credentials;
  if (use_mi.value_or(false)) {
    credentials.auth = RegistryAuth::kManagedIdentity;
    credentials.identity_client_id = client_id.value_or("");
    return credentials;
  }
  const bool has_username = settings.count("DOCKER_REGISTRY_SERVER_USERNAME") != 0 &&
                            setting(settings, "DOCKER_REGISTRY_SERVER_USERNAME");
  const bool has_password = settings.count("DOCKER_REGISTRY_SERVER_PASSWORD") != 0 &&
                            setting(settings, "DOCKER_REGISTRY_SERVER_PASSWORD");
  if (!has_username && !has_password)
    return credentials;
  if (!has_username || !has_password) {
    return makeError(ErrorCode::kInvalidArgument,
                     std::string("app setting DOCKER_REGISTRY_SERVER_") +
                         (has_username ? "PASSWORD" : "USERNAME") + " is missing: set both " +
                         "DOCKER_REGISTRY_SERVER_USERNAME and DOCKER_REGISTRY_SERVER_PASSWORD");
  }
  // Credentials go only to the registry they were configured for.
  if (server_host && *server_host != image.domain) {
    return makeError(ErrorCode::kInvalidArgument,
                     "DOCKER_REGISTRY_SERVER_URL names " + safeQuoted(*server_host) +
                         " but the image is on " + image.domain +
                         "; registry credentials are not sent to " + "another registry");
  }
  credentials.auth = RegistryAuth::kBasic;
  ASSIGN_OR_RETURN(credentials.username, settingValue(settings, "DOCKER_REGISTRY_SERVER_USERNAME"));
  ASSIGN_OR_RETURN(credentials.password, settingValue(settings, "DOCKER_REGISTRY_SERVER_PASSWORD"));
  return credentials;
}

// Whether image pulls go over the VNet, and which setting said so. Each of these turns it on;
// the newest form is named when several do: publicNetworkAccess "SecuredByPerimeter" (every
// outbound call over the VNet), outboundVnetRouting.allTraffic, outboundVnetRouting
// .imagePullTraffic (the new name of vnetImagePullEnabled), vnetImagePullEnabled (on the site
// or in siteConfig), the app setting WEBSITE_PULL_IMAGE_OVER_VNET.
Result<std::pair<bool, std::string>> readRoute(const SiteSections& sections,
                                               const Settings& settings) {
  const std::array<std::pair<const json*, std::string>, 2> holders{
      std::pair<const json*, std::string>{&sections.site, sections.site_path},
      {&sections.config, sections.config_path}};
  for (const auto& [holder, holder_path] : holders) {
    ASSIGN_OR_RETURN(auto access,
                     optionalString(*holder, "publicNetworkAccess", sections.pathOf(holder_path)));
    if (access && upper(*access) == "SECUREDBYPERIMETER")
      return std::pair{true, joinPath(holder_path, "publicNetworkAccess") + " SecuredByPerimeter"};
  }
  for (const char* key : {"allTraffic", "imagePullTraffic"}) {
    for (const auto& [holder, holder_path] : holders) {
      if (!holder->contains("outboundVnetRouting") || (*holder)["outboundVnetRouting"].is_null())
        continue;
      const std::string routing_path = joinPath(holder_path, "outboundVnetRouting");
      const json& routing = (*holder)["outboundVnetRouting"];
      if (!routing.is_object())
        return typeError(routing_path, "an object", routing);
      ASSIGN_OR_RETURN(auto value, optionalBool(routing, key, routing_path));
      if (value.value_or(false))
        return std::pair{true, routing_path + "." + key};
    }
  }
  for (const auto& [holder, holder_path] : holders) {
    ASSIGN_OR_RETURN(auto value,
                     optionalBool(*holder, "vnetImagePullEnabled", sections.pathOf(holder_path)));
    if (value.value_or(false))
      return std::pair{true, joinPath(holder_path, "vnetImagePullEnabled")};
  }
  auto legacy = setting(settings, "WEBSITE_PULL_IMAGE_OVER_VNET");
  if (legacy && (upper(*legacy) == "TRUE" || *legacy == "1"))
    return std::pair{true, std::string("app setting WEBSITE_PULL_IMAGE_OVER_VNET")};
  return std::pair{false, std::string()};
}

// An app setting holding a whole number in [low, high], or nothing.
Result<std::optional<int>> integerSetting(const Settings& settings, const std::string& name,
                                          int low, int high) {
  auto text = setting(settings, name);
  if (!text)
    return std::optional<int>();
  int value = 0;
  auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), value);
  if (ec != std::errc() || end != text->data() + text->size() || value < low || value > high) {
    return makeError(ErrorCode::kInvalidArgument,
                     settings.at(name).first + ": app setting " + name + " must be a whole " +
                         "number from " + std::to_string(low) + " to " + std::to_string(high) +
                         ", got " + safeQuoted(*text));
  }
  return std::optional<int>(value);
}

Result<std::optional<int>> integerField(const json& object, const char* key,
                                        const std::string& path, int low, int high) {
  if (!object.contains(key) || object[key].is_null())
    return std::optional<int>();
  const json& value = object[key];
  if (!value.is_number_integer() || value.get<int64_t>() < low || value.get<int64_t>() > high) {
    return typeError(
        path + "." + key,
        ("a whole number from " + std::to_string(low) + " to " + std::to_string(high)).c_str(),
        value);
  }
  return std::optional<int>(value.get<int>());
}

// The site's DNS for VNet pulls: each dnsConfiguration field over its app setting. The ranges
// are App Service's: 1-5 attempts, 1-30 seconds each.
Result<SiteConfig::Dns> readDns(const SiteSections& sections, const Settings& settings) {
  SiteConfig::Dns dns;
  const json* config = nullptr;
  std::string config_path;
  for (const auto& [holder, holder_path] :
       {std::pair<const json*, std::string>{&sections.site, sections.site_path},
        {&sections.config, sections.config_path}}) {
    if (holder->contains("dnsConfiguration") && !(*holder)["dnsConfiguration"].is_null()) {
      config = &(*holder)["dnsConfiguration"];
      config_path = joinPath(holder_path, "dnsConfiguration");
      if (!config->is_object())
        return typeError(config_path, "an object", *config);
      break;
    }
  }
  const json empty = json::object();
  const json& fields = config != nullptr ? *config : empty;
  auto checkServer = [](const std::string& text, const std::string& where) -> Status {
    if (auto server = resolver::DnsServer::parse(text); !server)
      return makeError(ErrorCode::kInvalidArgument, where + ": " + server.error().message);
    return {};
  };
  if (fields.contains("dnsServers") && !fields["dnsServers"].is_null()) {
    const std::string path = config_path + ".dnsServers";
    if (!fields["dnsServers"].is_array())
      return typeError(path, "an array of DNS server addresses", fields["dnsServers"]);
    for (size_t i = 0; i < fields["dnsServers"].size(); ++i) {
      const std::string item_path = path + "[" + std::to_string(i) + "]";
      const json& item = fields["dnsServers"][i];
      if (!item.is_string())
        return typeError(item_path, "a DNS server address", item);
      RETURN_IF_ERROR(checkServer(item.get<std::string>(), item_path));
      dns.servers.push_back(item.get<std::string>());
    }
    if (!dns.servers.empty())
      dns.decided_by.push_back(path);
  }
  if (dns.servers.empty()) {
    if (auto server = setting(settings, "WEBSITE_DNS_SERVER")) {
      RETURN_IF_ERROR(checkServer(*server, settings.at("WEBSITE_DNS_SERVER").first));
      dns.servers.push_back(*server);
      dns.decided_by.push_back("app setting WEBSITE_DNS_SERVER");
    }
  }
  ASSIGN_OR_RETURN(auto alt, optionalString(fields, "dnsAltServer", config_path));
  if (alt && !alt->empty()) {
    RETURN_IF_ERROR(checkServer(*alt, config_path + ".dnsAltServer"));
    dns.alt_server = *alt;
    dns.decided_by.push_back(config_path + ".dnsAltServer");
  } else if (auto setting_alt = setting(settings, "WEBSITE_DNS_ALT_SERVER")) {
    RETURN_IF_ERROR(checkServer(*setting_alt, settings.at("WEBSITE_DNS_ALT_SERVER").first));
    dns.alt_server = *setting_alt;
    dns.decided_by.push_back("app setting WEBSITE_DNS_ALT_SERVER");
  }
  ASSIGN_OR_RETURN(dns.attempts, integerField(fields, "dnsRetryAttemptCount", config_path, 1, 5));
  if (dns.attempts) {
    dns.decided_by.push_back(config_path + ".dnsRetryAttemptCount");
  } else {
    ASSIGN_OR_RETURN(dns.attempts, integerSetting(settings, "WEBSITE_DNS_ATTEMPTS", 1, 5));
    if (dns.attempts)
      dns.decided_by.push_back("app setting WEBSITE_DNS_ATTEMPTS");
  }
  ASSIGN_OR_RETURN(dns.timeout_seconds,
                   integerField(fields, "dnsRetryAttemptTimeout", config_path, 1, 30));
  if (dns.timeout_seconds) {
    dns.decided_by.push_back(config_path + ".dnsRetryAttemptTimeout");
  } else {
    ASSIGN_OR_RETURN(dns.timeout_seconds, integerSetting(settings, "WEBSITE_DNS_TIMEOUT", 1, 30));
    if (dns.timeout_seconds)
      dns.decided_by.push_back("app setting WEBSITE_DNS_TIMEOUT");
  }
  return dns;
}

}  // namespace

Result<SiteConfig> parseSiteConfig(std::string_view json_text) {
  ASSIGN_OR_RETURN(const json doc,
                   parseJson(json_text, "site config", ErrorCode::kInvalidArgument));
  if (!doc.is_object())
    return typeError("$", "an object", doc);
  const bool arm = doc.contains("properties") && doc["properties"].is_object();
  const json& site = arm ? doc["properties"] : doc;
  const std::string site_path = arm ? "properties" : "";
  const std::string config_path = joinPath(site_path, "siteConfig");
  if (!site.contains("siteConfig"))
    return makeError(ErrorCode::kInvalidArgument, config_path + ": missing");
  if (!site["siteConfig"].is_object())
    return typeError(config_path, "an object", site["siteConfig"]);
  const SiteSections sections{doc, site, site["siteConfig"], site_path, config_path};

  SiteConfig result;
  ASSIGN_OR_RETURN(auto name, optionalString(doc, "name", "$"));
  result.name = name.value_or("");
  ASSIGN_OR_RETURN(auto fx, optionalString(sections.config, "linuxFxVersion", config_path));
  if (!fx)
    return makeError(ErrorCode::kInvalidArgument, config_path + ".linuxFxVersion: missing");
  result.linux_fx_version = *fx;

  ASSIGN_OR_RETURN(const Settings settings, findAppSettings(sections));
  std::optional<std::string> server_host;
  if (auto server_url = setting(settings, "DOCKER_REGISTRY_SERVER_URL"))
    server_host = registryHostOf(*server_url);
  ASSIGN_OR_RETURN(result.image, resolveImage(result.linux_fx_version, server_host,
                                              config_path + ".linuxFxVersion"));
  ASSIGN_OR_RETURN(SiteCredentials credentials,
                   readCredentials(sections, settings, server_host, result.image));
  result.auth = credentials.auth;
  result.identity_client_id = std::move(credentials.identity_client_id);
  result.registry_username = std::move(credentials.username);
  result.registry_password = std::move(credentials.password);
  ASSIGN_OR_RETURN(auto route, readRoute(sections, settings));
  result.pull_over_vnet = route.first;
  result.route_decided_by = std::move(route.second);
  ASSIGN_OR_RETURN(result.dns, readDns(sections, settings));

  ASSIGN_OR_RETURN(auto kv_identity,
                   optionalString(site, "keyVaultReferenceIdentity", sections.pathOf(site_path)));
  if (kv_identity && !kv_identity->empty())
    result.key_vault_identity = *kv_identity;
  auto ci = setting(settings, "DOCKER_ENABLE_CI");
  result.continuous_deployment = ci && (upper(*ci) == "TRUE" || *ci == "1");
  return result;
}

}  // namespace pullagent::agent
