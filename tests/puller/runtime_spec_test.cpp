#include "puller/unpack/runtime_spec.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <set>

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

TEST_F(RuntimeSpec, APasswdFifoNeitherBlocksNorResolves) {
  std::filesystem::remove(dir_ / "rootfs" / "etc" / "passwd");
  ASSERT_EQ(::mkfifo((dir_ / "rootfs" / "etc" / "passwd").c_str(), 0600), 0);
  auto root = ConfinedRoot::open(dir_ / "rootfs");
  ASSERT_TRUE(root.ok());
  auto text = makeRuntimeSpec(R"({"config":{"User":"web"},"rootfs":{"diff_ids":[]}})", *root);
  ASSERT_FALSE(text.ok());
  EXPECT_EQ(text.error().code, ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace pullagent::puller
