#include "agent/config/site_compose.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <set>

#include "agent/config/site_containers.h"
#include "agent/config/site_credentials.h"
#include "base/base64.h"
#include "base/redact.h"

namespace pullagent::agent::site_compose {
namespace {

// What App Service reads of a Compose file (learn.microsoft.com "Configure a custom container",
// "Docker Compose options": supported options); anything else is refused rather than silently
// ignored, since the site would not run as its file says.
constexpr std::array kServiceKeys = {"command", "entrypoint", "environment", "image",
                                     "ports",   "restart",    "volumes"};
constexpr std::array kTopLevelKeys = {"version", "services", "volumes"};

std::string listOf(const auto& keys) {
  std::string out;
  for (const char* key : keys)
    out += (out.empty() ? "" : ", ") + std::string(key);
  return out;
}

bool contains(const auto& keys, const std::string& key) {
  return std::any_of(std::begin(keys), std::end(keys), [&](const char* k) { return key == k; });
}

// yaml-cpp recurses per nesting level: a hostile file of a few KB of "[[[[" would exhaust the
// stack. Flow collections are counted here; block nesting needs an indent per level, which the
// size limit bounds.
bool nestingWithin(std::string_view yaml, int limit) {
  int depth = 0;
  for (char c : yaml) {
    if (c == '[' || c == '{')
      ++depth;
    else if ((c == ']' || c == '}') && depth > 0)
      --depth;
    if (depth > limit)
      return false;
  }
  return true;
}

std::string lineOf(const YAML::Node& node) {
  return node.Mark().is_null() ? "" : " (line " + std::to_string(node.Mark().line + 1) + ")";
}

bool exposesWebPort(const YAML::Node& service) {
  const YAML::Node ports = service["ports"];
  if (!ports || !ports.IsSequence())
    return false;
  for (const auto& port : ports) {
    if (!port.IsScalar())
      continue;
    const std::string text = port.Scalar();
    // "8080:80", "80", "127.0.0.1:8080:80": the host side is what App Service routes to.
    std::string host = text.substr(0, text.rfind(':'));
    host = host.substr(host.rfind(':') + 1);
    if (host == "80" || host == "8080")
      return true;
  }
  return false;
}

Result<SiteContainer> readService(const std::string& name, const YAML::Node& service,
                                  const std::optional<std::string>& server_host,
                                  const std::string& where) {
  if (!site_containers::isContainerName(name)) {
    return makeError(ErrorCode::kInvalidArgument,
                     where + ": service name " + safeQuoted(name) +
                         " is not a container name (letters, digits, '.', '_', '-', up to 64)");
  }
  const std::string service_path = where + ": services." + name;
  if (!service.IsMap())
    return makeError(ErrorCode::kInvalidArgument,
                     service_path + lineOf(service) + ": expected a mapping");
  for (const auto& entry : service) {
    const std::string key = entry.first.IsScalar() ? entry.first.Scalar() : "?";
    if (!contains(kServiceKeys, key)) {
      return makeError(ErrorCode::kUnsupported,
                       service_path + "." + safeEscaped(key, 40) + lineOf(entry.first) +
                           ": App Service does not support " + safeQuoted(key, 40) +
                           " in Compose files" +
                           (key == "build" ? " (it pulls images; build and push the image, then "
                                             "name it in image)"
                                           : "") +
                           "; supported: " + listOf(kServiceKeys));
    }
  }
  const YAML::Node image = service["image"];
  if (!image || !image.IsScalar() || image.Scalar().empty()) {
    return makeError(ErrorCode::kInvalidArgument,
                     service_path + ".image" + lineOf(service) + ": missing");
  }
  SiteContainer container;
  container.name = name;
  container.is_main = false;
  ASSIGN_OR_RETURN(container.image, site_credentials::siteImage(image.Scalar(), server_host,
                                                                service_path + ".image"));
  if (const YAML::Node command = service["command"]; command && command.IsScalar())
    container.startup_command = command.Scalar();
  return container;
}

}  // namespace

Result<std::vector<SiteContainer>> readComposeServices(
    std::string_view base64_yaml, const std::optional<std::string>& server_host,
    const std::string& path) {
  auto yaml = decodeBase64(base64_yaml, kMaxComposeBytes);
  if (!yaml) {
    return makeError(ErrorCode::kInvalidArgument,
                     path +
                         ": COMPOSE| must be followed by the base64 of a Compose file of at "
                         "most " +
                         std::to_string(kMaxComposeBytes / 1024) + " KiB");
  }
  if (!nestingWithin(*yaml, 32))
    return makeError(ErrorCode::kInvalidArgument, path + ": the Compose file nests too deeply");
  YAML::Node doc;
  try {
    doc = YAML::Load(*yaml);
  } catch (const YAML::Exception& e) {
    // e.msg names the problem, e.mark where; the file's text is not quoted (it may hold
    // environment values).
    return makeError(ErrorCode::kInvalidArgument,
                     path + ": the Compose file is not YAML: " + safeEscaped(e.msg, 120) +
                         " (line " + std::to_string(e.mark.line + 1) + ")");
  }
  if (!doc.IsMap())
    return makeError(ErrorCode::kInvalidArgument, path + ": the Compose file is not a mapping");
  try {
    for (const auto& entry : doc) {
      const std::string key = entry.first.IsScalar() ? entry.first.Scalar() : "?";
      if (!contains(kTopLevelKeys, key)) {
        return makeError(ErrorCode::kUnsupported,
                         path + ": " + safeEscaped(key, 40) + lineOf(entry.first) +
                             ": App Service does not support top-level " + safeQuoted(key, 40) +
                             " in Compose files; supported: " + listOf(kTopLevelKeys));
      }
    }
    const YAML::Node services = doc["services"];
    if (!services || !services.IsMap() || services.size() == 0)
      return makeError(ErrorCode::kInvalidArgument, path + ": services: missing or empty");
    if (services.size() > site_containers::kMaxContainers) {
      return makeError(ErrorCode::kInvalidArgument,
                       path + ": services: " + std::to_string(services.size()) +
                           " services; a site runs at most " +
                           std::to_string(site_containers::kMaxContainers));
    }
    std::vector<SiteContainer> containers;
    std::set<std::string> names;
    size_t main = 0;
    bool web_found = false;
    for (const auto& entry : services) {
      const std::string name = entry.first.IsScalar() ? entry.first.Scalar() : "";
      ASSIGN_OR_RETURN(SiteContainer container, readService(name, entry.second, server_host, path));
      if (!names.insert(name).second) {
        return makeError(ErrorCode::kInvalidArgument,
                         path + ": services." + name + ": given twice");
      }
      if (!web_found && exposesWebPort(entry.second)) {
        web_found = true;
        main = containers.size();
      }
      containers.push_back(std::move(container));
    }
    containers[main].is_main = true;
    std::rotate(containers.begin(), containers.begin() + static_cast<std::ptrdiff_t>(main),
                containers.begin() + static_cast<std::ptrdiff_t>(main) + 1);
    return containers;
  } catch (const YAML::Exception& e) {
    return makeError(ErrorCode::kInvalidArgument,
                     path + ": the Compose file: " + safeEscaped(e.msg, 120));
  }
}

}  // namespace pullagent::agent::site_compose
