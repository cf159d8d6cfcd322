#include "puller/lazy/lazy_records.h"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "base/atomic_file.h"
#include "base/base64.h"
#include "base/bounded_read.h"
#include "base/json_reader.h"
#include "puller/oci/sha256.h"

namespace pullagent::puller {
namespace fs = std::filesystem;
namespace {

constexpr const char* kLayerRecord = "layer.json";
constexpr size_t kMaxRecordBytes = size_t{4} << 20;  // a bundle of many layers with annotations

nlohmann::json descriptorJson(const Descriptor& layer) {
  return {{"mediaType", layer.media_type},
          {"digest", layer.digest.str()},
          {"size", layer.size},
          {"annotations", layer.annotations}};
}

Result<BlobSource> readSource(const JsonReader& value) {
  BlobSource source;
  ASSIGN_OR_RETURN(source.registry, value["registry"].string());
  ASSIGN_OR_RETURN(source.repository, value["repository"].string());
  return source;
}

Result<nlohmann::json> readJson(const fs::path& path, std::string_view what) {
  ASSIGN_OR_RETURN(auto text, readRegularFile(path, kMaxRecordBytes));
  return parseJson(text, what, ErrorCode::kInternal);
}

}  // namespace

Status writeLayerRecord(const fs::path& layer_dir, const LazyLayerRecord& record) {
  const nlohmann::json json = {{"format", record.format},
                               {"libfuse", record.libfuse},
                               {"registry", record.source.registry},
                               {"repository", record.source.repository},
                               {"layer", descriptorJson(record.layer)},
                               {"init", encodeBase64(record.init)},
                               {"connection", record.connection}};
  return writeFileAtomic(layer_dir / kLayerRecord, json.dump() + "\n");
}

Result<LazyLayerRecord> readLayerRecord(const fs::path& layer_dir) {
  ASSIGN_OR_RETURN(auto json, readJson(layer_dir / kLayerRecord, "lazy layer record"));
  const JsonReader root(json, "lazy layer record", ErrorCode::kInternal);
  LazyLayerRecord record;
  // Absent in a record older than the fields: another format (0), refused as such.
  ASSIGN_OR_RETURN(auto format, root["format"].optionalInteger(0, INT32_MAX));
  ASSIGN_OR_RETURN(auto libfuse, root["libfuse"].optionalInteger(0, INT32_MAX));
  record.format = static_cast<int>(format.value_or(0));
  record.libfuse = static_cast<int>(libfuse.value_or(0));
  ASSIGN_OR_RETURN(record.source, readSource(root));
  ASSIGN_OR_RETURN(record.layer, parseDescriptor(root["layer"]));
  ASSIGN_OR_RETURN(auto init, root["init"].string());
  auto decoded = decodeBase64(init);
  if (!decoded)
    return makeError(ErrorCode::kInternal, root["init"].where() + ": not base64");
  record.init = std::move(*decoded);
  ASSIGN_OR_RETURN(auto connection, root["connection"].integer(1, UINT32_MAX));
  record.connection = static_cast<unsigned>(connection);
  return record;
}

Status writeBundleRecord(const fs::path& dir, const LazyBundle& bundle) {
  nlohmann::json layers = nlohmann::json::array();
  for (const auto& layer : bundle.layers)
    layers.push_back(descriptorJson(layer));
  nlohmann::json diff_ids = nlohmann::json::array();
  for (const auto& diff_id : bundle.diff_ids)
    diff_ids.push_back(diff_id.str());
  nlohmann::json served = nlohmann::json::array();
  for (const auto& digest : bundle.served)
    served.push_back(digest.str());
  const nlohmann::json json = {{"bundle", bundle.dir.string()},
                               {"registry", bundle.source.registry},
                               {"repository", bundle.source.repository},
                               {"layers", layers},
                               {"diffIds", diff_ids},
                               {"served", served},
                               {"privileged", bundle.apply.privileged}};
  std::error_code error;
  fs::create_directories(dir, error);
  if (error)
    return makeError(ErrorCode::kInternal, "create " + dir.string() + ": " + error.message());
  return writeFileAtomic(dir / (Sha256::of(bundle.dir.string()).hex() + ".json"),
                         json.dump() + "\n");
}

void removeBundleRecord(const fs::path& dir, const fs::path& bundle) {
  std::error_code ignored;
  fs::remove(dir / (Sha256::of(bundle.string()).hex() + ".json"), ignored);
}

namespace {

Result<LazyBundle> readBundle(const fs::path& path) {
  ASSIGN_OR_RETURN(auto json, readJson(path, "lazy bundle record"));
  const JsonReader root(json, "lazy bundle record", ErrorCode::kInternal);
  LazyBundle bundle;
  ASSIGN_OR_RETURN(auto dir, root["bundle"].string());
  bundle.dir = dir;
  if (path.stem() != Sha256::of(bundle.dir.string()).hex())
    return makeError(ErrorCode::kInternal, path.string() + ": names another bundle");
  ASSIGN_OR_RETURN(bundle.source, readSource(root));
  ASSIGN_OR_RETURN(auto layers, root["layers"].elements());
  for (const auto& layer : layers) {
    ASSIGN_OR_RETURN(auto parsed, parseDescriptor(layer));
    bundle.layers.push_back(std::move(parsed));
  }
  for (const char* key : {"diffIds", "served"}) {
    ASSIGN_OR_RETURN(auto texts, root[key].optionalStrings());
    for (const auto& text : texts) {
      ASSIGN_OR_RETURN(auto digest, Digest::parse(text));
      (std::string_view(key) == "served" ? bundle.served : bundle.diff_ids).push_back(digest);
    }
  }
  if (bundle.diff_ids.size() != bundle.layers.size())
    return makeError(ErrorCode::kInternal, path.string() + ": layers and diffIds differ");
  ASSIGN_OR_RETURN(bundle.apply.privileged, root["privileged"].boolean());
  return bundle;
}

}  // namespace

std::vector<LazyBundle> readBundleRecords(const fs::path& dir) {
  std::vector<LazyBundle> bundles;
  std::error_code error;
  for (const auto& item : fs::directory_iterator(dir, error)) {
    if (item.path().extension() != ".json")
      continue;
    auto bundle = readBundle(item.path());
    if (!bundle) {
      spdlog::warn("{}: dropped: {}", item.path().string(), bundle.error().describe());
      std::error_code ignored;
      fs::remove(item.path(), ignored);
      continue;
    }
    bundles.push_back(std::move(bundle.value()));
  }
  return bundles;
}

}  // namespace pullagent::puller
