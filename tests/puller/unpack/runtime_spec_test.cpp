#include "puller/unpack/runtime_spec.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <set>
#include <vector>

#include "tests/support/temp_dir.h"

namespace pullagent::puller {
namespace {

using nlohmann::json;

std::set<std::string> asSet(const json& list) {
  std::set<std::string> out;
  for (const auto& item : list)
    out.insert(item.get<std::string>());
  return out;
}

class RuntimeSpec : public ::testing::Test {
 protected:
  void SetUp() override {
    std::filesystem::create_directories(dir_ / "rootfs" / "etc");
    testing::writeFile(dir_ / "rootfs" / "etc" / "passwd",
                       "root:x:0:0::/root:/bin/sh\n"
                       "web:x:1000:1000::/home/web:/bin/sh\n");
  }
  json spec(const json& config) {
    auto root = ConfinedRoot::open(dir_ / "rootfs");
    EXPECT_TRUE(root.ok());
    auto text = makeRuntimeSpec(config.dump(), root.value());
    EXPECT_TRUE(text.ok()) << text.error().message;
    return text ? json::parse(text.value()) : json();
  }
  testing::TempDir dir_{"pullagent-spec"};
};

// Docker's defaults as its documentation lists them ("Runtime privilege and Linux capabilities",
// the default masked and read-only paths): a container gets these and no more.
TEST_F(RuntimeSpec, GrantsDockersDefaultsNoMoreNoLess) {
  const json doc = spec({{"config", {{"Cmd", {"/bin/sh"}}}},
                         {"rootfs", {{"type", "layers"}, {"diff_ids", json::array()}}}});
  const std::set<std::string> docker_caps = {
      "CAP_AUDIT_WRITE", "CAP_CHOWN",   "CAP_DAC_OVERRIDE",     "CAP_FOWNER",    "CAP_FSETID",
      "CAP_KILL",        "CAP_MKNOD",   "CAP_NET_BIND_SERVICE", "CAP_NET_RAW",   "CAP_SETFCAP",
      "CAP_SETGID",      "CAP_SETPCAP", "CAP_SETUID",           "CAP_SYS_CHROOT"};
  const json& caps = doc["process"]["capabilities"];
  for (const char* set : {"bounding", "effective", "permitted"})
    EXPECT_EQ(asSet(caps[set]), docker_caps) << set;
  EXPECT_FALSE(caps.contains("inheritable"));
  EXPECT_FALSE(caps.contains("ambient"));
  EXPECT_EQ(doc["process"]["noNewPrivileges"], true);

  const std::set<std::string> masked = asSet(doc["linux"]["maskedPaths"]);
  for (const char* path : {"/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys",
                           "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                           "/proc/sched_debug", "/proc/scsi", "/sys/firmware"}) {
    EXPECT_EQ(masked.count(path), 1u) << path;
  }
  EXPECT_EQ(asSet(doc["linux"]["readonlyPaths"]),
            (std::set<std::string>{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                                   "/proc/sysrq-trigger"}));
  std::set<std::string> destinations;
  for (const auto& mount : doc["mounts"])
    destinations.insert(mount["destination"]);
  EXPECT_EQ(destinations, (std::set<std::string>{"/proc", "/dev", "/dev/pts", "/sys",
                                                 "/sys/fs/cgroup", "/dev/mqueue", "/dev/shm"}));
  for (const auto& mount : doc["mounts"]) {
    if (mount["destination"] == "/sys" || mount["destination"] == "/sys/fs/cgroup") {
      EXPECT_EQ(asSet(mount["options"]).count("ro"), 1u) << mount.dump();
    }
  }
  ASSERT_EQ(doc["process"]["rlimits"].size(), 1u);
  EXPECT_EQ(doc["process"]["rlimits"][0]["type"], "RLIMIT_NOFILE");
  // Nothing privileged: no host namespaces shared, no devices allowed beyond the runtime's own.
  std::set<std::string> namespaces;
  for (const auto& ns : doc["linux"]["namespaces"]) {
    EXPECT_FALSE(ns.contains("path")) << ns.dump();
    namespaces.insert(ns["type"]);
  }
  EXPECT_EQ(namespaces, (std::set<std::string>{"pid", "network", "ipc", "uts", "mount", "cgroup"}));
  EXPECT_FALSE(doc["linux"].contains("devices"));
}

TEST_F(RuntimeSpec, TheImageConfigSetsTheProcessOnly) {
  const json doc = spec({{"config",
                          {{"Entrypoint", {"/app"}},
                           {"Cmd", {"--port", "80"}},
                           {"Env", {"A=1"}},
                           {"WorkingDir", "srv"},
                           {"User", "web"}}},
                         {"rootfs", {{"type", "layers"}, {"diff_ids", json::array()}}}});
  EXPECT_EQ(doc["process"]["args"], json({"/app", "--port", "80"}));
  EXPECT_EQ(doc["process"]["cwd"], "/srv");
  EXPECT_EQ(doc["process"]["user"]["uid"], 1000);
  EXPECT_EQ(doc["process"]["env"][0], "A=1");
  EXPECT_EQ(doc["process"]["env"][1].get<std::string>().rfind("PATH=", 0), 0u);
}

// The system's profile (Debian's golang-github-containers-common, Docker's default as
// containers/common keeps it), specialised for the default capabilities on this machine.
TEST_F(RuntimeSpec, DockersSeccompProfileKeepsKeyringsBpfAndUserfaultfdOut) {
  const json doc = spec({{"rootfs", {{"type", "layers"}, {"diff_ids", json::array()}}}});
  const json& seccomp = doc["linux"]["seccomp"];
  ASSERT_TRUE(seccomp.is_object()) << doc.dump(2);
  EXPECT_NE(seccomp["defaultAction"], "SCMP_ACT_ALLOW");
  EXPECT_FALSE(seccomp["architectures"].empty());
  std::set<std::string> allowed;
  for (const auto& rule : seccomp["syscalls"]) {
    if (rule["action"] == "SCMP_ACT_ALLOW" && !rule.contains("args")) {
      for (const auto& name : rule["names"])
        allowed.insert(name.get<std::string>());
    }
  }
  for (const char* denied : {"keyctl", "add_key", "request_key", "bpf", "userfaultfd", "mount",
                             "umount2", "kexec_load", "init_module", "unshare"}) {
    EXPECT_EQ(allowed.count(denied), 0u) << denied;
  }
  for (const char* granted : {"read", "openat", "chroot", "socket", "setuid"}) {
    EXPECT_EQ(allowed.count(granted), 1u) << granted;
  }
  // clone only without CLONE_NEW* flags: no user (or other) namespaces from inside.
  bool clone_filtered = false;
  for (const auto& rule : seccomp["syscalls"]) {
    if (rule["names"] == json({"clone"}) && rule.contains("args"))
      clone_filtered =
          rule["args"][0]["value"] == 2114060288 && rule["args"][0]["op"] == "SCMP_CMP_MASKED_EQ";
  }
  EXPECT_TRUE(clone_filtered);
}

TEST(SeccompProfile, RulesFollowDockersIncludesAndExcludes) {
  const char* profile = R"({
    "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
    "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]},
                {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}],
    "syscalls": [
      {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
      {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64"]}},
      {"names": ["arm_only"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["arm64"]}},
      {"names": ["not_on_amd64"], "action": "SCMP_ACT_ALLOW", "excludes": {"arches": ["amd64"]}},
      {"names": ["chroot"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_CHROOT"]}},
      {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
      {"names": ["clone"], "action": "SCMP_ACT_ALLOW", "excludes": {"caps": ["CAP_SYS_ADMIN"]},
       "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
      {"names": ["new_call"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "6.5"}},
      {"names": ["old_call"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4.8"}},
      {"names": ["chmod"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]})";
  auto seccomp = ociSeccomp(
      profile, SeccompTarget{"amd64", {"CAP_SYS_CHROOT", "CAP_CHOWN"}, "6.1.0-13-amd64"});
  ASSERT_TRUE(seccomp.ok()) << seccomp.error().message;
  EXPECT_EQ((*seccomp)["defaultAction"], "SCMP_ACT_ERRNO");
  EXPECT_EQ((*seccomp)["defaultErrnoRet"], 1);
  EXPECT_EQ((*seccomp)["architectures"], json({"SCMP_ARCH_X86_64", "SCMP_ARCH_X86"}));
  std::vector<std::string> names;
  for (const auto& rule : (*seccomp)["syscalls"])
    names.push_back(rule["names"][0]);
  // Docker's own restrictions close the list: clone only without namespace flags, no clone3.
  EXPECT_EQ(names, (std::vector<std::string>{"read", "arch_prctl", "chroot", "clone", "old_call",
                                             "chmod", "clone", "clone3"}));
  EXPECT_EQ((*seccomp)["syscalls"][3]["args"][0]["op"], "SCMP_CMP_MASKED_EQ");
  EXPECT_EQ((*seccomp)["syscalls"][5]["errnoRet"], 38);
}

TEST(SeccompProfile, AProfileOfTheWrongShapeIsAnErrorNamingThePath) {
  for (const char* profile :
       {R"({"defaultAction": 1, "archMap": [], "syscalls": []})",
        R"({"defaultAction": "SCMP_ACT_ERRNO", "archMap": [], "syscalls": []})",
        R"({"defaultAction": "SCMP_ACT_ERRNO", "archMap": [{"architecture": "SCMP_ARCH_X86_64"}],
            "syscalls": [{"names": "read", "action": "SCMP_ACT_ALLOW"}]})"}) {
    auto seccomp = ociSeccomp(profile, SeccompTarget{"amd64", {}, "6.1"});
    ASSERT_FALSE(seccomp.ok()) << profile;
    EXPECT_EQ(seccomp.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(seccomp.error().message.find("seccomp profile: "), std::string::npos);
  }
  auto missing = loadSeccomp("/nonexistent/seccomp.json", {});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
  EXPECT_NE(missing.error().message.find("golang-github-containers-common"), std::string::npos);
}

TEST_F(RuntimeSpec, APasswdFifoNeitherBlocksNorResolves) {
  std::filesystem::remove(dir_ / "rootfs" / "etc" / "passwd");
  ASSERT_EQ(::mkfifo((dir_ / "rootfs" / "etc" / "passwd").c_str(), 0600), 0);
  auto root = ConfinedRoot::open(dir_ / "rootfs");
  ASSERT_TRUE(root.ok());
  auto text = makeRuntimeSpec(R"({"config":{"User":"web"},"rootfs":{"diff_ids":[]}})", *root,
                              RuntimeOptions{std::nullopt});
  ASSERT_FALSE(text.ok());
  EXPECT_EQ(text.error().code, ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace pullagent::puller
