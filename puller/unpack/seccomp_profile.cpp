#include "puller/unpack/seccomp_profile.h"

#include <sys/utsname.h>

#include <algorithm>
#include <charconv>
#include <set>
#include <vector>

#include "base/bounded_read.h"
#include "base/json_reader.h"

namespace pullagent::puller {
namespace {

using nlohmann::json;

constexpr size_t kMaxProfileBytes = 1 << 20;

// uname's machine in Go's architecture names, which profiles use.
std::string goArch(std::string_view machine) {
  if (machine == "x86_64")
    return "amd64";
  if (machine == "aarch64")
    return "arm64";
  if (machine.size() == 4 && machine[0] == 'i' && machine.substr(2) == "86")
    return "x86";
  if (machine.starts_with("arm"))
    return "arm";
  return std::string(machine);
}

// The SCMP_ARCH name of a Go architecture, as the archMap names its entries.
std::string seccompArch(std::string_view arch) {
  if (arch == "amd64")
    return "SCMP_ARCH_X86_64";
  if (arch == "arm64")
    return "SCMP_ARCH_AARCH64";
  if (arch == "x86")
    return "SCMP_ARCH_X86";
  if (arch == "arm")
    return "SCMP_ARCH_ARM";
  std::string upper(arch);
  std::transform(upper.begin(), upper.end(), upper.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  return "SCMP_ARCH_" + upper;
}

// "5.8" < "6.1.0-13-amd64": major and minor compared as numbers.
std::pair<int, int> kernelVersion(std::string_view text) {
  int major = 0;
  int minor = 0;
  auto dot = text.find('.');
  std::from_chars(text.data(), text.data() + text.size(), major);
  if (dot != std::string_view::npos)
    std::from_chars(text.data() + dot + 1, text.data() + text.size(), minor);
  return {major, minor};
}

bool contains(const std::vector<std::string>& list, const std::string& value) {
  return std::find(list.begin(), list.end(), value) != list.end();
}

// Whether a rule applies to `target`, as Docker decides it.
Result<bool> applies(const JsonReader& rule, const SeccompTarget& target) {
  ASSIGN_OR_RETURN(auto excluded_arches, rule["excludes"]["arches"].optionalStrings());
  ASSIGN_OR_RETURN(auto excluded_caps, rule["excludes"]["caps"].optionalStrings());
  ASSIGN_OR_RETURN(auto included_arches, rule["includes"]["arches"].optionalStrings());
  ASSIGN_OR_RETURN(auto included_caps, rule["includes"]["caps"].optionalStrings());
  ASSIGN_OR_RETURN(auto min_kernel, rule["includes"]["minKernel"].optionalString());
  if (contains(excluded_arches, target.arch))
    return false;
  for (const auto& cap : excluded_caps) {
    if (target.capabilities.count(cap) != 0)
      return false;
  }
  if (!included_arches.empty() && !contains(included_arches, target.arch))
    return false;
  for (const auto& cap : included_caps) {
    if (target.capabilities.count(cap) == 0)
      return false;
  }
  if (min_kernel && !min_kernel->empty() &&
      kernelVersion(target.kernel) < kernelVersion(*min_kernel)) {
    return false;
  }
  return true;
}

// Docker's default profile refuses these where containers/common's (podman's, which relies on
// capabilities and user namespaces instead) allows them: the kernel keyring always, and mounts,
// new namespaces (user namespaces included) and setns unless the container has CAP_SYS_ADMIN.
// Applied on top of whatever profile is configured, so a container never gets more than Docker
// would give it.
void restrictLikeDocker(json& syscalls, const SeccompTarget& target) {
  static const std::set<std::string> kNever = {"keyctl", "add_key", "request_key"};
  static const std::set<std::string> kSysAdmin = {
      "mount",    "umount",      "umount2", "unshare", "setns",         "pivot_root",
      "fsconfig", "fsmount",     "fsopen",  "fspick",  "move_mount",    "open_tree",
      "quotactl", "quotactl_fd", "clone",   "clone3",  "lookup_dcookie"};
  const bool sys_admin = target.capabilities.count("CAP_SYS_ADMIN") != 0;
  json kept = json::array();
  for (auto& rule : syscalls) {
    if (rule["action"] == "SCMP_ACT_ALLOW" && !rule.contains("args")) {
      json names = json::array();
      for (const auto& name : rule["names"]) {
        const std::string text = name.get<std::string>();
        if (kNever.count(text) == 0 && (sys_admin || kSysAdmin.count(text) == 0))
          names.push_back(text);
      }
      if (names.empty())
        continue;
      rule["names"] = names;
    }
    kept.push_back(std::move(rule));
  }
  if (!sys_admin) {
    // clone without any CLONE_NEW* flag (0x7E020000), as Docker; the flags are the first
    // argument except on s390. clone3 hides its flags in memory: ENOSYS, so libc uses clone.
    const int flags_index = target.arch.starts_with("s390") ? 1 : 0;
    kept.push_back({{"names", {"clone"}},
                    {"action", "SCMP_ACT_ALLOW"},
                    {"args",
                     {{{"index", flags_index},
                       {"value", 2114060288},
                       {"valueTwo", 0},
                       {"op", "SCMP_CMP_MASKED_EQ"}}}}});
    kept.push_back({{"names", {"clone3"}}, {"action", "SCMP_ACT_ERRNO"}, {"errnoRet", 38}});
  }
  syscalls = std::move(kept);
}

}  // namespace

SeccompTarget hostSeccompTarget(std::set<std::string> capabilities) {
  utsname host{};
  ::uname(&host);
  return {goArch(host.machine), std::move(capabilities), host.release};
}

Result<json> ociSeccomp(std::string_view profile, const SeccompTarget& target) {
  ASSIGN_OR_RETURN(auto parsed, parseJson(profile, "seccomp profile", ErrorCode::kInvalidArgument));
  const JsonReader doc(parsed, "seccomp profile", ErrorCode::kInvalidArgument);
  if (!doc.isObject())
    return doc.typeError("an object");
  json out = json::object();
  ASSIGN_OR_RETURN(auto default_action, doc["defaultAction"].string());
  out["defaultAction"] = default_action;
  ASSIGN_OR_RETURN(auto default_errno, doc["defaultErrnoRet"].optionalInteger(0, 4095));
  if (default_errno)
    out["defaultErrnoRet"] = *default_errno;

  // The native architecture and its sub-architectures (x86_64 runs x86 and x32 code too).
  const std::string native = seccompArch(target.arch);
  json architectures = json::array();
  if (!doc["archMap"].missing()) {
    ASSIGN_OR_RETURN(auto arch_map, doc["archMap"].elements());
    for (const auto& entry : arch_map) {
      ASSIGN_OR_RETURN(auto name, entry["architecture"].string());
      if (name != native)
        continue;
      architectures.push_back(name);
      ASSIGN_OR_RETURN(auto subs, entry["subArchitectures"].optionalStrings());
      for (auto& sub : subs)
        architectures.push_back(std::move(sub));
    }
  }
  if (architectures.empty())
    return doc["archMap"].error("has no entry for this machine's architecture " + native);
  out["architectures"] = architectures;

  json syscalls = json::array();
  ASSIGN_OR_RETURN(auto rules, doc["syscalls"].elements());
  for (const auto& rule : rules) {
    ASSIGN_OR_RETURN(bool keep, applies(rule, target));
    if (!keep)
      continue;
    ASSIGN_OR_RETURN(auto names, rule["names"].optionalStrings());
    ASSIGN_OR_RETURN(auto action, rule["action"].string());
    json call = {{"names", names}, {"action", action}};
    ASSIGN_OR_RETURN(auto errno_ret, rule["errnoRet"].optionalInteger(0, 4095));
    if (errno_ret)
      call["errnoRet"] = *errno_ret;
    if (!rule["args"].missing()) {
      ASSIGN_OR_RETURN(auto args, rule["args"].elements());
      json out_args = json::array();
      for (const auto& arg : args) {
        ASSIGN_OR_RETURN(auto index, arg["index"].integer(0, 5));
        ASSIGN_OR_RETURN(auto value, arg["value"].integer(0));
        ASSIGN_OR_RETURN(auto value_two, arg["valueTwo"].optionalInteger(0));
        ASSIGN_OR_RETURN(auto op, arg["op"].string());
        out_args.push_back(
            {{"index", index}, {"value", value}, {"valueTwo", value_two.value_or(0)}, {"op", op}});
      }
      if (!out_args.empty())
        call["args"] = out_args;
    }
    syscalls.push_back(std::move(call));
  }
  restrictLikeDocker(syscalls, target);
  out["syscalls"] = syscalls;
  return out;
}

Result<json> loadSeccomp(const std::filesystem::path& path,
                         const std::set<std::string>& capabilities) {
  auto text = readRegularFile(path, kMaxProfileBytes, Links::kFollow);
  if (!text) {
    if (text.error().code == ErrorCode::kNotFound) {
      return makeError(ErrorCode::kNotFound,
                       "seccomp profile " + path.string() +
                           " not found: install Debian's golang-github-containers-common, or "
                           "name another profile (seccompProfile, --seccomp-profile)");
    }
    return text.error();
  }
  auto seccomp = ociSeccomp(text.value(), hostSeccompTarget(capabilities));
  if (!seccomp)
    return seccomp.error().context(path.string());
  return seccomp;
}

}  // namespace pullagent::puller
