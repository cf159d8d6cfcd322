#include "puller/state/bundle_roots.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "base/atomic_file.h"
#include "base/bounded_read.h"
#include "base/confined_root.h"
#include "base/json_reader.h"
#include "base/unique_fd.h"
#include "puller/oci/sha256.h"
#include "puller/snapshot/overlay_mount.h"

namespace pullagent::puller {
namespace fs = std::filesystem;
namespace {

constexpr size_t kMaxRootFile = 64 * 1024;
constexpr std::string_view kRootSuffix = ".json";

struct Root {
  fs::path bundle;
  std::set<Digest> chains;
};

// A root file as we wrote it; anything else (a stranger, a hand edit) is nullopt.
std::optional<Root> readRoot(const fs::path& file) {
  auto text = readRegularFile(file, kMaxRootFile);
  if (!text)
    return std::nullopt;
  auto json = parseJson(*text, "bundle root");
  if (!json || !json->is_object() || !json->contains("bundle") || !(*json)["bundle"].is_string() ||
      !json->contains("chainIds") || !(*json)["chainIds"].is_array()) {
    return std::nullopt;
  }
  Root root{fs::path((*json)["bundle"].get<std::string>()), {}};
  for (const auto& id : (*json)["chainIds"]) {
    if (!id.is_string())
      return std::nullopt;
    auto chain = Digest::parse(id.get<std::string>());
    if (!chain)
      return std::nullopt;
    root.chains.insert(*chain);
  }
  return root;
}

// The bundle still has its root filesystem over snapshots. Looked at without following a link
// in its last step: a root never makes gc read anything but this one file's type.
bool usesSnapshots(const fs::path& bundle) {
  struct stat info {};
  return ::lstat((bundle / kRootfsMountsFile).c_str(), &info) == 0 && S_ISREG(info.st_mode);
}

}  // namespace

fs::path BundleRoots::fileFor(const fs::path& bundle) const {
  return dir_ / (Sha256::of(bundle.lexically_normal().string()).hex() + std::string(kRootSuffix));
}

std::set<Digest> BundleRoots::chains(const fs::path& bundle) const {
  auto root = readRoot(fileFor(bundle));
  return root ? root->chains : std::set<Digest>{};
}

Status BundleRoots::record(const fs::path& bundle, const std::set<Digest>& chains) const {
  const fs::path file = fileFor(bundle);
  if (chains.empty()) {
    if (::unlink(file.c_str()) != 0 && errno != ENOENT)
      return errnoError(errno, "remove", file);
    return {};
  }
  if (::mkdir(dir_.c_str(), 0700) != 0 && errno != EEXIST)
    return errnoError(errno, "create", dir_);
  nlohmann::json ids = nlohmann::json::array();
  for (const auto& chain : chains)
    ids.push_back(chain.str());
  const nlohmann::json root = {{"bundle", bundle.lexically_normal().string()}, {"chainIds", ids}};
  return writeFileAtomic(file, root.dump(2) + "\n");
}

std::set<Digest> BundleRoots::collectLive() const {
  std::set<Digest> live;
  UniqueFd dir(::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!dir.valid())
    return live;
  auto names = ConfinedRoot::list(dir.get(), dir_.string());
  if (!names)
    return live;
  for (const auto& name : *names) {
    if (!name.ends_with(kRootSuffix))
      continue;  // a writeFileAtomic temporary, or a stranger: not ours to judge
    auto root = readRoot(dir_ / name);
    const char* why = nullptr;
    if (!root)
      why = "not a bundle root";
    else if (!root->bundle.is_absolute() || fileFor(root->bundle) != dir_ / name)
      why = "not the root of the bundle it names";
    else if (!usesSnapshots(root->bundle))
      why = "the bundle is gone or no longer uses snapshots";
    if (why == nullptr) {
      live.insert(root->chains.begin(), root->chains.end());
      continue;
    }
    spdlog::info("gc: forgetting bundle root {}: {}", name, why);
    ::unlinkat(dir.get(), name.c_str(), 0);
  }
  return live;
}

}  // namespace pullagent::puller
