#include "puller/store/garbage_collector.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>
#include <system_error>

#include "base/atomic_file.h"
#include "base/bounded_read.h"
#include "base/json_reader.h"
#include "base/unique_fd.h"
#include "puller/registry/manifest.h"
#include "puller/unpack/confined_root.h"

namespace pullagent::puller {
namespace fs = std::filesystem;
namespace {

std::string readSmall(const fs::path& path) {
  auto text = readRegularFile(path, static_cast<size_t>(kMaxManifestSize));
  return text ? std::move(text.value()) : std::string();
}

// The blobs a manifest needs: itself, its config and its layers.
void markManifest(const fs::path& blobs, const Digest& digest, std::set<std::string>& live) {
  live.insert(digest.hex());
  auto parsed = parseManifest(readSmall(blobs / digest.hex()), "");
  if (!parsed)
    return;
  if (auto* manifest = std::get_if<ImageManifest>(&parsed.value())) {
    live.insert(manifest->config.digest.hex());
    for (const auto& layer : manifest->layers)
      live.insert(layer.digest.hex());
  }
}

void removePath(const fs::path& path) {
  UniqueFd parent(::open(path.parent_path().c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (parent.valid())
    (void)ConfinedRoot::removeAt(parent.get(), path.filename().string());
}

}  // namespace

Result<GcReport> collectGarbage(const fs::path& state_dir, const std::set<Digest>& keep,
                                bool keep_all) {
  GcReport report;
  std::error_code ec;
  const fs::path blobs = state_dir / "content" / "blobs" / "sha256";
  std::set<std::string> live;
  std::set<std::string> kept_images;

  for (const auto& entry : fs::directory_iterator(state_dir / "images", ec)) {
    const std::string name = entry.path().filename().string();
    auto digest = Digest::parse("sha256:" + name);
    if (!digest)
      continue;  // staging directories and strangers are not ours to judge here
    if (keep_all || keep.count(digest.value()) != 0) {
      kept_images.insert(name);
      markManifest(blobs, digest.value(), live);
      continue;
    }
    spdlog::info("gc: removing image {}", name);
    removePath(entry.path());
    ++report.images_removed;
  }
  for (const auto& digest : keep) {
    kept_images.insert(digest.hex());
    markManifest(blobs, digest, live);
  }

  // index.json: keep the entries of kept images (and mark the indexes they came through).
  const fs::path index_path = state_dir / "content" / "index.json";
  auto index = parseJson(readSmall(index_path), "index.json");
  if (index && index->is_object()) {
    nlohmann::json remaining = nlohmann::json::array();
    if (auto entries = JsonReader(index.value(), "index.json")["manifests"].elements()) {
      for (const auto& entry : entries.value()) {
        auto text = entry["digest"].string();
        auto digest = text ? Digest::parse(text.value()) : Result<Digest>(text.error());
        if (digest && (keep_all || kept_images.count(digest->hex()) != 0)) {
          markManifest(blobs, digest.value(), live);
          remaining.push_back(entry.raw());
        }
      }
    }
    (*index)["manifests"] = remaining;
    if (auto status = writeFileAtomic(index_path, index->dump(2) + "\n"); !status)
      return status.error();
  }

  for (const auto& entry : fs::directory_iterator(blobs, ec)) {
    const std::string name = entry.path().filename().string();
    if (live.count(name) != 0)
      continue;
    auto size = static_cast<int64_t>(entry.file_size(ec));
    if (::unlink(entry.path().c_str()) == 0) {
      ++report.blobs_removed;
      report.bytes_freed += ec ? 0 : size;
    }
  }
  return report;
}

}  // namespace pullagent::puller
