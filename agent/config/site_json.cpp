#include "agent/config/site_json.h"

#include <algorithm>
#include <cctype>
#include <charconv>

#include "base/json_reader.h"
#include "base/redact.h"

namespace pullagent::agent::site_json {

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

std::string joinPath(const std::string& a, const char* b) {
  return a.empty() ? std::string(b) : a + "." + b;
}

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

}  // namespace pullagent::agent::site_json
