#include "puller/mirror/hosts_config.h"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <sstream>
#include <toml.hpp>

#include "base/bounded_read.h"
#include "base/redact.h"
#include "puller/mirror/ordered_table.h"

namespace pullagent::puller {
namespace fs = std::filesystem;
namespace {

using TomlValue = toml::basic_value<toml::discard_comments, OrderedTable, std::vector>;

constexpr size_t kMaxHostsFile = 1024 * 1024;
constexpr std::string_view kDefaultDir = "_default";
// RFC 9110 token characters.
constexpr std::string_view kHeaderNameChars =
    "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

Error invalid(const std::string& where, const std::string& what) {
  return makeError(ErrorCode::kInvalidArgument, where + ": " + what);
}

std::string typeName(const TomlValue& value) {
  std::ostringstream name;
  name << value.type();
  return name.str();
}

fs::path absoluteFrom(const fs::path& base, const std::string& path) {
  return fs::path(path).is_absolute() ? fs::path(path) : base / path;
}

// "x" or ["x", "y"]: the strings, in order.
Result<std::vector<std::string>> stringOrList(const TomlValue& value, const std::string& where) {
  if (value.is_string())
    return std::vector<std::string>{value.as_string().str};
  if (!value.is_array())
    return invalid(where, "expected a string or an array of strings, got " + typeName(value));
  std::vector<std::string> items;
  const auto& array = value.as_array();
  for (size_t i = 0; i < array.size(); ++i) {
    if (!array[i].is_string()) {
      return invalid(where + "[" + std::to_string(i) + "]",
                     "expected a string, got " + typeName(array[i]));
    }
    items.push_back(array[i].as_string().str);
  }
  return items;
}

// scheme://host[:port][/path], https when no scheme is written (as containerd reads it; a scheme
// other than https or http is an error here, not a host name).
Status setServer(RegistryHost& host, std::string server, bool override_path,
                 const std::string& where) {
  if (server.find("://") == std::string::npos)
    server = "https://" + server;
  const auto separator = server.find("://");
  host.scheme = server.substr(0, separator);
  if (host.scheme != "https" && host.scheme != "http")
    return invalid(where, "scheme \"" + host.scheme + "\" is neither https nor http");
  const std::string rest = server.substr(separator + 3);
  const auto slash = rest.find('/');
  host.host = rest.substr(0, slash);
  // The URL is never echoed as written: user info would be a password in an error text.
  if (host.host.find('@') != std::string::npos) {
    return invalid(where,
                   "user info in a host URL is not supported; give a mirror's credentials as an "
                   "Authorization `header`");
  }
  if (host.host.empty() || host.host.find_first_of(" \t?#") != std::string::npos)
    return invalid(where, "\"" + redactUrl(server) + "\" does not name a host");
  std::string path = slash == std::string::npos ? "" : rest.substr(slash);
  if (path.find_first_of("?#") != std::string::npos)
    return invalid(where, "\"" + redactUrl(server) + "\": a query or fragment is not an API root");
  while (path.size() > 1 && path.back() == '/')
    path.pop_back();
  if (path == "/")
    path.clear();
  if (!override_path && !path.ends_with("/v2"))
    path += "/v2";
  host.path = path;
  return {};
}

// The keys a host entry and the file's top level (the origin) share.
Status readHostKeys(RegistryHost& host, const TomlValue& table, const fs::path& base,
                    const std::string& where) {
  for (const auto& [key, value] : table.as_table()) {
    const std::string at = where + key;
    if (key == "capabilities") {
      ASSIGN_OR_RETURN(auto names, stringOrList(value, at));
      host.capabilities = 0;
      for (const auto& name : names) {
        std::string lower = name;
        std::transform(lower.begin(), lower.end(), lower.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        if (lower == "pull")
          host.capabilities |= kCapabilityPull;
        else if (lower == "resolve")
          host.capabilities |= kCapabilityResolve;
        else if (lower == "push")
          host.capabilities |= kCapabilityPush;
        else
          return invalid(at, "unknown capability \"" + name + "\" (pull, resolve or push)");
      }
    } else if (key == "ca") {
      ASSIGN_OR_RETURN(auto files, stringOrList(value, at));
      for (const auto& file : files)
        host.ca_files.push_back(absoluteFrom(base, file));
    } else if (key == "client") {
      if (value.is_string()) {
        host.client_pairs.emplace_back(absoluteFrom(base, value.as_string().str), fs::path());
        continue;
      }
      if (!value.is_array())
        return invalid(at, "expected a string or an array, got " + typeName(value));
      const auto& array = value.as_array();
      for (size_t i = 0; i < array.size(); ++i) {
        const std::string item = at + "[" + std::to_string(i) + "]";
        ASSIGN_OR_RETURN(auto files, stringOrList(array[i], item));
        if (array[i].is_string()) {
          host.client_pairs.emplace_back(absoluteFrom(base, files[0]), fs::path());
        } else if (files.size() == 2) {
          host.client_pairs.emplace_back(absoluteFrom(base, files[0]),
                                         absoluteFrom(base, files[1]));
        } else {
          return invalid(
              item, "expected [certificate, key], got " + std::to_string(files.size()) + " files");
        }
      }
    } else if (key == "skip_verify") {
      if (!value.is_boolean())
        return invalid(at, "expected true or false, got " + typeName(value));
      host.skip_verify = value.as_boolean();
    } else if (key == "header") {
      if (!value.is_table())
        return invalid(at, "expected a table of header names, got " + typeName(value));
      for (const auto& [name, values] : value.as_table()) {
        // A field name is an HTTP token; a value never holds a line break or NUL (that would
        // inject headers). The value is not quoted back: it may be a credential.
        if (name.empty() || name.find_first_not_of(kHeaderNameChars) != std::string::npos)
          return invalid(at + "." + name, "not an HTTP header name");
        ASSIGN_OR_RETURN(auto items, stringOrList(values, at + "." + name));
        for (const auto& item : items) {
          if (item.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos)
            return invalid(at + "." + name, "a header value must not hold a line break or NUL");
          host.headers.emplace_back(name, item);
        }
      }
    }
    // override_path is read before the server; dial_timeout and keys containerd does not know
    // either are left alone, as containerd leaves them.
  }
  return {};
}

Result<bool> overridePath(const TomlValue& table, const std::string& where) {
  auto found = table.as_table().find("override_path");
  if (found == table.as_table().end())
    return false;
  if (!found->second.is_boolean())
    return invalid(where + "override_path",
                   "expected true or false, got " + typeName(found->second));
  return found->second.as_boolean();
}

RegistryHost originOf(std::string_view registry) {
  RegistryHost origin;
  origin.host = registry == "docker.io" ? "registry-1.docker.io" : std::string(registry);
  origin.origin = true;
  return origin;
}

// "host:port" as containerd also accepts it in a directory name: "host_port_".
std::string portDirectory(std::string_view registry) {
  const auto colon = registry.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || registry.find(']') != std::string_view::npos)
    return std::string(registry);
  return std::string(registry.substr(0, colon)) + "_" + std::string(registry.substr(colon + 1)) +
         "_";
}

bool isDirectory(const fs::path& path) {
  struct stat info {};
  return ::stat(path.c_str(), &info) == 0 && S_ISDIR(info.st_mode);
}

// Docker's certs.d layout: *.crt are CAs, *.cert with the *.key of the same name a client pair.
Result<std::vector<RegistryHost>> certificateFiles(const fs::path& dir, std::string_view registry) {
  RegistryHost origin = originOf(registry);
  std::error_code ec;
  std::vector<fs::path> names;
  for (const auto& entry : fs::directory_iterator(dir, ec))
    names.push_back(entry.path());
  if (ec)
    return makeError(ErrorCode::kPermissionDenied, "read " + dir.string() + ": " + ec.message());
  std::sort(names.begin(), names.end());
  for (const auto& path : names) {
    if (!fs::is_regular_file(path, ec))
      continue;
    if (path.extension() == ".crt") {
      origin.ca_files.push_back(path);
    } else if (path.extension() == ".cert") {
      fs::path key = path;
      key.replace_extension(".key");
      origin.client_pairs.emplace_back(path, fs::exists(key, ec) ? key : fs::path());
    }
  }
  return std::vector<RegistryHost>{origin};
}

}  // namespace

Result<std::vector<RegistryHost>> parseHostsToml(std::string_view text, const fs::path& base_dir,
                                                 std::string_view registry) {
  const std::string file = (base_dir / "hosts.toml").string();
  TomlValue root;
  try {
    std::istringstream in{std::string(text)};
    root = toml::parse<toml::discard_comments, OrderedTable, std::vector>(in, file);
  } catch (const std::exception& e) {
    return makeError(ErrorCode::kInvalidArgument, std::string(e.what()));
  }
  std::vector<RegistryHost> hosts;
  const auto& top = root.as_table();
  if (auto found = top.find("host"); found != top.end()) {
    if (!found->second.is_table())
      return invalid(file + ": host",
                     "expected tables [host.\"URL\"], got " + typeName(found->second));
    for (const auto& [server, table] : found->second.as_table()) {
      const std::string where = file + ": host.\"" + redactUrl(server) + "\"";
      if (!table.is_table())
        return invalid(where, "expected a table, got " + typeName(table));
      RegistryHost host;
      host.config_file = file;
      ASSIGN_OR_RETURN(const bool override_path, overridePath(table, where + "."));
      RETURN_IF_ERROR(setServer(host, server, override_path, where));
      RETURN_IF_ERROR(readHostKeys(host, table, base_dir, where + "."));
      hosts.push_back(std::move(host));
    }
  }
  RegistryHost origin = originOf(registry);
  origin.config_file = file;
  if (auto found = top.find("server"); found != top.end()) {
    if (!found->second.is_string())
      return invalid(file + ": server", "expected a URL, got " + typeName(found->second));
    ASSIGN_OR_RETURN(const bool override_path, overridePath(root, file + ": "));
    RETURN_IF_ERROR(
        setServer(origin, found->second.as_string().str, override_path, file + ": server"));
  }
  RETURN_IF_ERROR(readHostKeys(origin, root, base_dir, file + ": "));
  hosts.push_back(std::move(origin));
  return hosts;
}

Result<std::vector<RegistryHost>> loadRegistryHosts(const fs::path& config_dir,
                                                    std::string_view registry) {
  for (const auto& name :
       {portDirectory(registry), std::string(registry), std::string(kDefaultDir)}) {
    if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos)
      continue;
    const fs::path dir = config_dir / name;
    if (!isDirectory(dir))
      continue;
    auto text = readRegularFile(dir / "hosts.toml", kMaxHostsFile);
    if (!text) {
      if (text.error().code == ErrorCode::kNotFound)
        return certificateFiles(dir, registry);
      return text.error();
    }
    if (text->empty())
      return certificateFiles(dir, registry);
    return parseHostsToml(*text, dir, registry);
  }
  return std::vector<RegistryHost>{originOf(registry)};
}

}  // namespace pullagent::puller
