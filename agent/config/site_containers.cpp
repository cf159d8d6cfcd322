#include "agent/config/site_containers.h"

#include <algorithm>
#include <cctype>
#include <set>

#include "base/redact.h"

namespace pullagent::agent::site_containers {
namespace {

using namespace site_json;  // NOLINT: this file is the site_json helpers' user

bool isSiteContainerType(const json& item) {
  if (!item.is_object() || !item.contains("type") || !item["type"].is_string())
    return false;
  const std::string type = upper(item["type"].get<std::string>());
  return type == "MICROSOFT.WEB/SITES/SITECONTAINERS" || type == "SITECONTAINERS";
}

// The resources to read, each with its JSON path.
std::vector<std::pair<const json*, std::string>> siteContainerItems(const json& doc) {
  std::vector<std::pair<const json*, std::string>> items;
  if (doc.contains("sitecontainers") && doc["sitecontainers"].is_array()) {
    const json& list = doc["sitecontainers"];
    for (size_t i = 0; i < list.size(); ++i)
      items.emplace_back(&list[i], "sitecontainers[" + std::to_string(i) + "]");
  }
  if (doc.contains("resources") && doc["resources"].is_array()) {
    const json& list = doc["resources"];
    for (size_t i = 0; i < list.size(); ++i) {
      if (isSiteContainerType(list[i]))
        items.emplace_back(&list[i], "resources[" + std::to_string(i) + "]");
    }
  }
  return items;
}

Result<std::string> requiredString(const json& object, const char* key, const std::string& path) {
  ASSIGN_OR_RETURN(auto value, optionalString(object, key, path));
  if (!value || value->empty())
    return makeError(ErrorCode::kInvalidArgument, path + "." + key + ": missing");
  return *value;
}

// ARM names a child resource "<site>/<name>"; the CLI prints "<name>".
Result<std::string> containerName(const json& item, const std::string& path) {
  ASSIGN_OR_RETURN(std::string name, requiredString(item, "name", path));
  name = name.substr(name.rfind('/') + 1);
  if (!isContainerName(name)) {
    return makeError(ErrorCode::kInvalidArgument,
                     path + ".name: " + safeQuoted(name) +
                         " is not a container name (letters, digits, '.', '_', '-', up to 64)");
  }
  return name;
}

// targetPort is a string in the API ("8080"); templates write numbers too.
Result<std::string> targetPort(const json& properties, const std::string& path) {
  if (!properties.contains("targetPort") || properties["targetPort"].is_null())
    return std::string();
  const json& value = properties["targetPort"];
  std::string text = value.is_string()           ? value.get<std::string>()
                     : value.is_number_integer() ? std::to_string(value.get<int64_t>())
                                                 : std::string("-");
  int port = 0;
  const bool digits =
      !text.empty() && text.size() <= 5 &&
      std::all_of(text.begin(), text.end(), [](unsigned char c) { return std::isdigit(c) != 0; });
  if (digits)
    port = std::stoi(text);
  if (port < 1 || port > 65535)
    return typeError(path + ".targetPort", "a port from 1 to 65535", value);
  return text;
}

Result<std::vector<std::pair<std::string, std::string>>> environmentVariables(
    const json& properties, const std::string& path) {
  std::vector<std::pair<std::string, std::string>> variables;
  if (!properties.contains("environmentVariables") || properties["environmentVariables"].is_null())
    return variables;
  const json& list = properties["environmentVariables"];
  const std::string list_path = path + ".environmentVariables";
  if (!list.is_array())
    return typeError(list_path, "an array of {name, value}", list);
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string item_path = list_path + "[" + std::to_string(i) + "]";
    if (!list[i].is_object())
      return typeError(item_path, "an object with name and value", list[i]);
    ASSIGN_OR_RETURN(std::string name, requiredString(list[i], "name", item_path));
    // The value names an app setting (not a secret itself); a missing one gives "".
    ASSIGN_OR_RETURN(auto value, optionalString(list[i], "value", item_path));
    variables.emplace_back(name, value.value_or(""));
  }
  return variables;
}

Status checkVolumeMounts(const json& properties, const std::string& path) {
  if (!properties.contains("volumeMounts") || properties["volumeMounts"].is_null())
    return {};
  const json& list = properties["volumeMounts"];
  const std::string list_path = path + ".volumeMounts";
  if (!list.is_array())
    return typeError(list_path, "an array of volume mounts", list);
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string item_path = list_path + "[" + std::to_string(i) + "]";
    if (!list[i].is_object())
      return typeError(item_path, "an object", list[i]);
    ASSIGN_OR_RETURN(std::string mount, requiredString(list[i], "containerMountPath", item_path));
    if (mount.front() != '/')
      return typeError(item_path + ".containerMountPath", "an absolute path",
                       list[i]["containerMountPath"]);
    for (const char* key : {"volumeSubPath", "data"}) {
      if (auto value = optionalString(list[i], key, item_path); !value)
        return value.error();
    }
    if (auto read_only = optionalBool(list[i], "readOnly", item_path); !read_only)
      return read_only.error();
  }
  return {};
}

// passwordSecret: a Key Vault reference, else the name of an app setting, else the password.
Result<SettingValue> passwordSecret(const json& properties, const std::string& path,
                                    const Settings& settings, std::string& source) {
  const std::string secret_path = path + ".passwordSecret";
  if (!properties.contains("passwordSecret") || !properties["passwordSecret"].is_string() ||
      properties["passwordSecret"].get<std::string>().empty()) {
    if (properties.contains("passwordSecret") && !properties["passwordSecret"].is_null())
      return settingTypeError(secret_path, "a string", properties["passwordSecret"]);
    return makeError(ErrorCode::kInvalidArgument,
                     secret_path + ": missing (authType UserCredentials needs userName and " +
                         "passwordSecret)");
  }
  const std::string value = properties["passwordSecret"].get<std::string>();
  auto reference = parseKeyVaultReference(value);
  if (!reference)
    return reference.error().context(secret_path);
  if (reference.value()) {
    source = secret_path + " (Key Vault reference)";
    return SettingValue{Secret(value), reference.value()};
  }
  if (const std::string name = upper(value); settings.count(name) != 0 && setting(settings, name)) {
    source = secret_path + " (app setting " + settings.at(name).first + ")";
    return settingValue(settings, name);
  }
  source = secret_path;
  return SettingValue{Secret(value), std::nullopt};
}

Status readAuth(const json& properties, const std::string& path, const Settings& settings,
                SiteContainer& container) {
  ASSIGN_OR_RETURN(auto auth_type, optionalString(properties, "authType", path));
  const std::string type = upper(auth_type.value_or("Anonymous"));
  if (type == "ANONYMOUS")
    return {};
  if (type == "SYSTEMIDENTITY") {
    container.auth = RegistryAuth::kManagedIdentity;
    return {};
  }
  if (type == "USERASSIGNED") {
    container.auth = RegistryAuth::kManagedIdentity;
    ASSIGN_OR_RETURN(container.identity_client_id,
                     requiredString(properties, "userManagedIdentityClientId", path));
    return {};
  }
  if (type == "USERCREDENTIALS") {
    container.auth = RegistryAuth::kBasic;
    ASSIGN_OR_RETURN(std::string user, requiredString(properties, "userName", path));
    container.registry_username = SettingValue{Secret(user), std::nullopt};
    ASSIGN_OR_RETURN(container.registry_password,
                     passwordSecret(properties, path, settings, container.password_source));
    return {};
  }
  return typeError(path + ".authType", "Anonymous, UserCredentials, SystemIdentity or UserAssigned",
                   properties["authType"]);
}

Result<SiteContainer> readContainer(const json& item, const std::string& path,
                                    const Settings& settings) {
  if (!item.is_object())
    return typeError(path, "a sitecontainer resource {name, type, properties}", item);
  SiteContainer container;
  ASSIGN_OR_RETURN(container.name, containerName(item, path));
  const std::string props_path = path + ".properties";
  if (!item.contains("properties") || !item["properties"].is_object())
    return makeError(ErrorCode::kInvalidArgument, props_path + ": missing");
  const json& properties = item["properties"];
  ASSIGN_OR_RETURN(std::string image, requiredString(properties, "image", props_path));
  auto parsed = puller::ImageRef::parse(image);
  if (!parsed)
    return parsed.error().context(props_path + ".image");
  container.image = parsed.value();
  ASSIGN_OR_RETURN(auto is_main, optionalBool(properties, "isMain", props_path));
  if (!is_main)
    return makeError(ErrorCode::kInvalidArgument, props_path + ".isMain: missing");
  container.is_main = *is_main;
  ASSIGN_OR_RETURN(container.target_port, targetPort(properties, props_path));
  ASSIGN_OR_RETURN(auto command, optionalString(properties, "startUpCommand", props_path));
  container.startup_command = command.value_or("");
  ASSIGN_OR_RETURN(container.environment, environmentVariables(properties, props_path));
  RETURN_IF_ERROR(checkVolumeMounts(properties, props_path));
  ASSIGN_OR_RETURN(auto inherit,
                   optionalBool(properties, "inheritAppSettingsAndConnectionStrings", props_path));
  container.inherit_app_settings = inherit.value_or(true);
  RETURN_IF_ERROR(readAuth(properties, props_path, settings, container));
  return container;
}

}  // namespace

bool isContainerName(std::string_view name) {
  return !name.empty() && name.size() <= 64 && std::isalnum(static_cast<unsigned char>(name[0])) &&
         std::all_of(name.begin(), name.end(), [](unsigned char c) {
           return std::isalnum(c) != 0 || c == '.' || c == '_' || c == '-';
         });
}

size_t countSiteContainers(const json& doc) {
  return siteContainerItems(doc).size();
}

Result<std::vector<SiteContainer>> readSiteContainers(const json& doc, const Settings& settings) {
  if (doc.contains("sitecontainers") && !doc["sitecontainers"].is_null() &&
      !doc["sitecontainers"].is_array()) {
    return typeError("sitecontainers", "an array of sitecontainer resources",
                     doc["sitecontainers"]);
  }
  const auto items = siteContainerItems(doc);
  if (items.empty()) {
    return makeError(ErrorCode::kInvalidArgument,
                     "sitecontainers: missing: a SITECONTAINERS site needs its containers, as "
                     "`az webapp sitecontainers list` prints them, under \"sitecontainers\" (or "
                     "as Microsoft.Web/sites/sitecontainers resources in \"resources\")");
  }
  if (items.size() > kMaxContainers) {
    return makeError(ErrorCode::kInvalidArgument,
                     "sitecontainers: " + std::to_string(items.size()) +
                         " containers; a site runs at most " + std::to_string(kMaxContainers) +
                         " (the main container and nine sidecars)");
  }
  std::vector<SiteContainer> containers;
  std::set<std::string> names;
  std::vector<std::string> mains;
  for (const auto& [item, path] : items) {
    ASSIGN_OR_RETURN(SiteContainer container, readContainer(*item, path, settings));
    if (!names.insert(container.name).second) {
      return makeError(ErrorCode::kInvalidArgument,
                       path + ".name: container " + safeQuoted(container.name) + " is given twice");
    }
    if (container.is_main)
      mains.push_back(container.name);
    containers.push_back(std::move(container));
  }
  if (mains.size() != 1) {
    std::string which;
    for (const auto& name : mains)
      which += (which.empty() ? "" : ", ") + name;
    return makeError(ErrorCode::kInvalidArgument,
                     mains.empty() ? std::string("sitecontainers: no container has isMain true; "
                                                 "exactly one must be the main container")
                                   : "sitecontainers: " + std::to_string(mains.size()) +
                                         " containers have isMain true (" + which +
                                         "); exactly one must be the main container");
  }
  std::stable_partition(containers.begin(), containers.end(),
                        [](const SiteContainer& c) { return c.is_main; });
  return containers;
}

}  // namespace pullagent::agent::site_containers
