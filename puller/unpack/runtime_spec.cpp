#include "puller/unpack/runtime_spec.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "base/json_reader.h"
#include "base/redact.h"

namespace pullagent::puller {
namespace {

using nlohmann::json;

std::string readConfined(const ConfinedRoot& root, const std::string& path) {
  auto parts = ConfinedRoot::split(path);
  if (!parts || parts->empty())
    return {};
  auto dir = root.openDirectory(*parts, parts->size() - 1, false);
  if (!dir)
    return {};
  // The image's own file: a FIFO or a device there must not block or feed us for ever.
  UniqueFd fd(::openat(dir->get(), parts->back().c_str(),
                       O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
  struct stat info {};
  if (!fd.valid() || ::fstat(fd.get(), &info) != 0 || !S_ISREG(info.st_mode))
    return {};
  std::string content;
  char buffer[8192];
  ssize_t n = 0;
  while ((n = ::read(fd.get(), buffer, sizeof buffer)) > 0 && content.size() < (1 << 20)) {
    content.append(buffer, static_cast<size_t>(n));
  }
  return content;
}

std::optional<uint32_t> number(std::string_view text) {
  uint32_t value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size() || text.empty())
    return std::nullopt;
  return value;
}

// name or number in a passwd/group style file: field 0 name, field 2 id, field 3 (passwd) gid.
std::optional<std::pair<uint32_t, uint32_t>> lookup(const std::string& file, std::string_view who) {
  std::istringstream lines(file);
  std::string line;
  while (std::getline(lines, line)) {
    std::vector<std::string> fields;
    std::stringstream parts(line);
    std::string field;
    while (std::getline(parts, field, ':'))
      fields.push_back(field);
    if (fields.size() < 3 || (fields[0] != who && fields[2] != who))
      continue;
    auto id = number(fields[2]);
    auto gid = fields.size() > 3 ? number(fields[3]) : id;
    if (id)
      return std::make_pair(*id, gid.value_or(*id));
  }
  return std::nullopt;
}

Result<std::pair<uint32_t, uint32_t>> resolveUser(const std::string& user,
                                                  const ConfinedRoot& root) {
  if (user.empty())
    return std::make_pair(0u, 0u);
  auto colon = user.find(':');
  std::string name = user.substr(0, colon);
  auto passwd = readConfined(root, "etc/passwd");
  std::pair<uint32_t, uint32_t> ids{0, 0};
  if (auto uid = number(name)) {
    ids.first = *uid;
    if (auto entry = lookup(passwd, name))
      ids.second = entry->second;
  } else if (auto entry = lookup(passwd, name)) {
    ids = *entry;
  } else {
    return makeError(ErrorCode::kInvalidArgument,
                     "image user " + safeQuoted(name) + " is not in the image's /etc/passwd");
  }
  if (colon != std::string::npos) {
    std::string group = user.substr(colon + 1);
    if (auto gid = number(group)) {
      ids.second = *gid;
    } else if (auto entry = lookup(readConfined(root, "etc/group"), group)) {
      ids.second = entry->first;
    } else {
      return makeError(ErrorCode::kInvalidArgument,
                       "image group " + safeQuoted(group) + " is not in the image's /etc/group");
    }
  }
  return ids;
}

}  // namespace

// What Docker gives a container by default (moby oci/defaults.go, oci/caps/defaults.go, and
// the masked paths of Docker 25), written out here so that a test can hold it to them.
json containerCapabilities() {
  const json caps =
      json::array({"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
                   "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
                   "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"});
  // Docker 20.10 and later leave the inheritable and ambient sets empty.
  return {{"bounding", caps}, {"effective", caps}, {"permitted", caps}};
}

json containerRlimits() {
  // containerd 1.7's (Docker 25's) NOFILE: soft 1024 as most programs expect (select()), hard
  // 524288 for servers that raise it - but no higher than this host allows, or the runtime,
  // which may not raise a hard limit, fails to start the container.
  rlimit host{};
  uint64_t hard = 524288;
  if (::getrlimit(RLIMIT_NOFILE, &host) == 0 && host.rlim_max != RLIM_INFINITY)
    hard = std::min<uint64_t>(hard, host.rlim_max);
  const uint64_t soft = std::min<uint64_t>(1024, hard);
  return json::array({{{"type", "RLIMIT_NOFILE"}, {"soft", soft}, {"hard", hard}}});
}

json containerMounts() {
  return json::array(
      {{{"destination", "/proc"},
        {"type", "proc"},
        {"source", "proc"},
        {"options", {"nosuid", "noexec", "nodev"}}},
       {{"destination", "/dev"},
        {"type", "tmpfs"},
        {"source", "tmpfs"},
        {"options", {"nosuid", "strictatime", "mode=755", "size=65536k"}}},
       {{"destination", "/dev/pts"},
        {"type", "devpts"},
        {"source", "devpts"},
        {"options", {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}}},
       {{"destination", "/sys"},
        {"type", "sysfs"},
        {"source", "sysfs"},
        {"options", {"nosuid", "noexec", "nodev", "ro"}}},
       {{"destination", "/sys/fs/cgroup"},
        {"type", "cgroup"},
        {"source", "cgroup"},
        {"options", {"ro", "nosuid", "noexec", "nodev"}}},
       {{"destination", "/dev/mqueue"},
        {"type", "mqueue"},
        {"source", "mqueue"},
        {"options", {"nosuid", "noexec", "nodev"}}},
       {{"destination", "/dev/shm"},
        {"type", "tmpfs"},
        {"source", "shm"},
        {"options", {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}}}});
}

json containerMaskedPaths() {
  return json::array({"/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys",
                      "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                      "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
                      "/sys/devices/virtual/powercap"});
}

json containerReadonlyPaths() {
  return json::array({"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"});
}

Result<std::string> makeRuntimeSpec(std::string_view image_config, const ConfinedRoot& rootfs,
                                    const RuntimeOptions& options) {
  ASSIGN_OR_RETURN(auto parsed, parseJson(image_config, "image config"));
  const JsonReader config(parsed, "image config");
  if (!config.isObject())
    return config.typeError("an object");
  // Docker writes null for unset fields ("Entrypoint": null); a value of another type is an error.
  const JsonReader process_config = config["config"];
  if (!process_config.missing() && !process_config.isObject())
    return process_config.typeError("an object");
  json args = json::array();
  for (const char* key : {"Entrypoint", "Cmd"}) {
    ASSIGN_OR_RETURN(auto items, process_config[key].optionalStrings());
    for (auto& arg : items)
      args.push_back(std::move(arg));
  }
  if (args.empty())
    args.push_back("/bin/sh");
  json env = json::array();
  bool has_path = false;
  ASSIGN_OR_RETURN(auto env_items, process_config["Env"].optionalStrings());
  for (auto& item : env_items) {
    has_path = has_path || item.starts_with("PATH=");
    env.push_back(std::move(item));
  }
  if (!has_path)
    env.push_back("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  ASSIGN_OR_RETURN(auto working_dir, process_config["WorkingDir"].optionalString());
  std::string cwd = working_dir.value_or("");
  if (cwd.empty() || cwd.front() != '/')
    cwd = "/" + cwd;
  ASSIGN_OR_RETURN(auto user_text, process_config["User"].optionalString());
  ASSIGN_OR_RETURN(auto user, resolveUser(user_text.value_or(""), rootfs));

  json spec = {{"ociVersion", "1.0.2"},
               {"process",
                {{"terminal", false},
                 {"user", {{"uid", user.first}, {"gid", user.second}}},
                 {"args", args},
                 {"env", env},
                 {"cwd", cwd},
                 {"capabilities", containerCapabilities()},
                 {"rlimits", containerRlimits()},
                 {"noNewPrivileges", true}}},
               {"root", {{"path", "rootfs"}, {"readonly", false}}},
               {"hostname", "container"},
               {"mounts", containerMounts()},
               {"linux",
                {{"namespaces", json::array({{{"type", "pid"}},
                                             {{"type", "network"}},
                                             {{"type", "ipc"}},
                                             {{"type", "uts"}},
                                             {{"type", "mount"}},
                                             {{"type", "cgroup"}}})},
                 {"maskedPaths", containerMaskedPaths()},
                 {"readonlyPaths", containerReadonlyPaths()}}}};
  if (options.seccomp_profile) {
    std::set<std::string> granted;
    for (const auto& cap : spec["process"]["capabilities"]["bounding"])
      granted.insert(cap.get<std::string>());
    ASSIGN_OR_RETURN(spec["linux"]["seccomp"], loadSeccomp(*options.seccomp_profile, granted));
  }
  return spec.dump(2) + "\n";
}

}  // namespace pullagent::puller
