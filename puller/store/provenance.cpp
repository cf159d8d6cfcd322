#include "puller/store/provenance.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "base/atomic_file.h"
#include "base/bounded_read.h"
#include "base/json_reader.h"
#include "base/unique_fd.h"
#include "puller/reference/reference.h"

namespace pullagent::puller {
namespace fs = std::filesystem;
namespace {

constexpr std::string_view kSuffix = ".json";
}  // namespace

bool ProvenanceRecord::servedByRegistry(const std::string& registry) const {
  return std::any_of(sources.begin(), sources.end(),
                     [&](const BlobSource& source) { return source.registry == registry; });
}

bool validBlobSource(const BlobSource& source) {
  // The reference grammar itself: a record names only what an image reference can.
  return isValidRegistryDomain(source.registry) && isValidRepositoryName(source.repository);
}

Result<ProvenanceRecord> parseProvenanceRecord(std::string_view text, const Digest& expected) {
  if (text.size() > kMaxProvenanceRecordBytes)
    return makeError(ErrorCode::kResourceExhausted, "provenance record too large");
  ASSIGN_OR_RETURN(auto json, parseJson(text, "provenance record", ErrorCode::kProtocol, 8));
  const JsonReader root(json, "provenance record");
  ProvenanceRecord record;
  ASSIGN_OR_RETURN(auto digest_text, root["digest"].string());
  ASSIGN_OR_RETURN(record.digest, Digest::parse(digest_text));
  if (record.digest != expected)
    return root["digest"].error("names another blob than its file");
  ASSIGN_OR_RETURN(auto diff_id, root["diffId"].optionalString());
  if (diff_id) {
    ASSIGN_OR_RETURN(auto parsed, Digest::parse(*diff_id));
    record.diff_id = parsed;
  }
  ASSIGN_OR_RETURN(auto sources, root["sources"].elements());
  if (sources.size() > kMaxProvenanceSources)
    return root["sources"].error("more sources than a record holds");
  for (const auto& entry : sources) {
    BlobSource source;
    ASSIGN_OR_RETURN(source.registry, entry["registry"].string());
    ASSIGN_OR_RETURN(source.repository, entry["repository"].string());
    if (!validBlobSource(source))
      return entry.error("not a registry and repository");
    record.sources.insert(std::move(source));
  }
  return record;
}

std::string serializeProvenanceRecord(const ProvenanceRecord& record) {
  nlohmann::json json = {{"digest", record.digest.str()}};
  if (record.diff_id)
    json["diffId"] = record.diff_id->str();
  json["sources"] = nlohmann::json::array();
  for (const auto& source : record.sources)
    json["sources"].push_back({{"registry", source.registry}, {"repository", source.repository}});
  return json.dump(2) + "\n";
}

Status ProvenanceStore::prepare() const {
  if (::mkdir(dir_.c_str(), 0700) != 0 && errno != EEXIST)
    return errnoError(errno, "create", dir_);
  return {};
}

fs::path ProvenanceStore::pathOf(const Digest& digest) const {
  return dir_ / (digest.hex() + std::string(kSuffix));
}

std::optional<ProvenanceRecord> ProvenanceStore::read(const Digest& digest) const {
  auto text = readRegularFile(pathOf(digest), kMaxProvenanceRecordBytes);
  if (!text) {
    if (text.error().code != ErrorCode::kNotFound)
      spdlog::warn("provenance of {}: {} (read as no proof)", digest.str(),
                   text.error().describe());
    return std::nullopt;
  }
  auto record = parseProvenanceRecord(text.value(), digest);
  if (!record) {
    spdlog::warn("provenance of {}: {} (read as no proof)", digest.str(),
                 record.error().describe());
    return std::nullopt;
  }
  return std::move(record.value());
}

template <typename Change>
Status ProvenanceStore::update(const Digest& digest, Change change) {
  std::lock_guard in_process(mutex_);
  RETURN_IF_ERROR(prepare());
  const fs::path lock_path = dir_ / ".lock";
  UniqueFd lock(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!lock.valid())
    return errnoError(errno, "open", lock_path);
  while (::flock(lock.get(), LOCK_EX) != 0) {
    if (errno != EINTR)
      return errnoError(errno, "lock", lock_path);
  }
  ProvenanceRecord record;
  if (auto text = readRegularFile(pathOf(digest), kMaxProvenanceRecordBytes)) {
    if (auto parsed = parseProvenanceRecord(text.value(), digest))
      record = std::move(parsed.value());
  } else if (text.error().code != ErrorCode::kNotFound &&
             text.error().code != ErrorCode::kResourceExhausted &&
             text.error().code != ErrorCode::kInvalidArgument) {
    return text.error().context("provenance of " + digest.str());
  }
  record.digest = digest;
  if (!change(record))
    return {};  // nothing new
  return writeFileAtomic(pathOf(digest), serializeProvenanceRecord(record));
}

Status ProvenanceStore::addSource(const Digest& digest, const BlobSource& source) {
  if (!validBlobSource(source)) {
    return makeError(ErrorCode::kInvalidArgument, "provenance of " + digest.str() + ": \"" +
                                                      source.str() +
                                                      "\" is not a registry and repository");
  }
  return update(digest, [&](ProvenanceRecord& record) {
    if (record.servedBy(source))
      return false;
    // Full: a source makes way (the first of the same registry when that registry holds its
    // share, else the first of all). It costs that source one proof later.
    auto same_registry =
        std::find_if(record.sources.begin(), record.sources.end(),
                     [&](const BlobSource& s) { return s.registry == source.registry; });
    const auto of_registry = static_cast<size_t>(
        std::count_if(record.sources.begin(), record.sources.end(),
                      [&](const BlobSource& s) { return s.registry == source.registry; }));
    if (of_registry >= kMaxProvenanceSourcesPerRegistry)
      record.sources.erase(same_registry);
    else if (record.sources.size() >= kMaxProvenanceSources)
      record.sources.erase(record.sources.begin());
    record.sources.insert(source);
    return true;
  });
}

Status ProvenanceStore::recordDiffId(const Digest& blob, const Digest& diff_id) {
  return update(blob, [&](ProvenanceRecord& record) {
    if (record.diff_id == diff_id)
      return false;
    record.diff_id = diff_id;
    return true;
  });
}

Result<std::set<Digest>> ProvenanceStore::list() const {
  std::set<Digest> digests;
  std::error_code ec;
  fs::directory_iterator it(dir_, ec);
  if (ec) {
    if (ec == std::errc::no_such_file_or_directory)
      return digests;
    return errnoError(ec.value(), "list", dir_);
  }
  for (const auto& entry : it) {
    const std::string name = entry.path().filename().string();
    if (!name.ends_with(kSuffix))
      continue;
    if (auto digest = Digest::parse("sha256:" + name.substr(0, name.size() - kSuffix.size())))
      digests.insert(digest.value());
  }
  return digests;
}

Status ProvenanceStore::remove(const Digest& digest) {
  std::lock_guard in_process(mutex_);
  if (::unlink(pathOf(digest).c_str()) != 0 && errno != ENOENT)
    return errnoError(errno, "remove", pathOf(digest));
  return {};
}

}  // namespace pullagent::puller
