#include "agent/site/site_state.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <ctime>
#include <iomanip>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "base/atomic_file.h"
#include "base/bounded_read.h"
#include "base/clock.h"
#include "base/json_reader.h"
#include "puller/oci/digest.h"

namespace pullagent::agent {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

constexpr size_t kMaxStateFileBytes = 1 << 20;

constexpr std::array<std::pair<SitePhase, std::string_view>, 6> kPhases{{
    {SitePhase::kPending, "pending"},
    {SitePhase::kPulling, "pulling"},
    {SitePhase::kPublished, "published"},
    {SitePhase::kFailed, "failed"},
    {SitePhase::kInterrupted, "interrupted"},
    {SitePhase::kStopped, "stopped"},
}};

std::optional<std::chrono::system_clock::time_point> parseUtc(const std::string& text) {
  std::tm parts{};
  std::istringstream in(text);
  in >> std::get_time(&parts, "%Y-%m-%dT%H:%M:%SZ");
  if (in.fail())
    return std::nullopt;
  return fromUnixSeconds(static_cast<double>(timegm(&parts)));
}

json timeOrNull(const std::optional<std::chrono::system_clock::time_point>& at) {
  return at ? json(formatUtc(*at)) : json(nullptr);
}

std::optional<std::chrono::system_clock::time_point> timeField(const JsonReader& value) {
  auto text = value.string();
  return text ? parseUtc(text.value()) : std::nullopt;
}

}  // namespace

bool isSiteFileName(const std::string& file_name) {
  constexpr std::string_view kSuffix = ".json";
  if (file_name.size() <= kSuffix.size() || file_name.size() > 64 + kSuffix.size() ||
      !file_name.ends_with(kSuffix) || file_name[0] == '.') {
    return false;
  }
  for (size_t i = 0; i < file_name.size() - kSuffix.size(); ++i) {
    const char c = file_name[i];
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok)
      return false;
  }
  return true;
}

std::string_view toString(SitePhase phase) {
  for (const auto& [value, name] : kPhases) {
    if (value == phase)
      return name;
  }
  return "unknown";
}

std::optional<SitePhase> parseSitePhase(std::string_view text) {
  for (const auto& [value, name] : kPhases) {
    if (name == text)
      return value;
  }
  return std::nullopt;
}

std::string formatUtc(std::chrono::system_clock::time_point at) {
  std::time_t seconds = std::chrono::system_clock::to_time_t(at);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

std::vector<std::string> siteImages(const SiteState& state) {
  if (state.containers.empty())
    return {state.image};
  std::vector<std::string> images;
  for (const auto& container : state.containers)
    images.push_back(container.image);
  return images;
}

bool pinnedByDigest(const SiteState& state) {
  const auto images = siteImages(state);
  return std::all_of(images.begin(), images.end(),
                     [](const std::string& image) { return image.find('@') != std::string::npos; });
}

std::vector<PublishedImage> publishedUnit(const SiteState& state) {
  std::vector<PublishedImage> unit;
  if (state.published)
    unit.push_back(*state.published);
  unit.insert(unit.end(), state.sidecars.begin(), state.sidecars.end());
  return unit;
}

namespace {

json progressJson(const SiteProgress& progress) {
  return {{"layersDone", progress.layers_done},
          {"layersTotal", progress.layers_total},
          {"bytesDone", progress.bytes_done},
          {"bytesTotal", progress.bytes_total}};
}

json publishedJson(const PublishedImage& image) {
  json doc = {{"image", image.image},      {"digest", image.digest},
              {"path", image.path},        {"configSha256", image.config_sha256},
              {"at", formatUtc(image.at)}, {"resolvedDigest", image.resolved_digest}};
  if (!image.container.empty())
    doc["container"] = image.container;
  if (!image.signature.empty())
    doc["signature"] = image.signature;
  return doc;
}

Result<std::string> text(const JsonReader& value) {
  ASSIGN_OR_RETURN(auto read, value.optionalString());
  return read.value_or("");
}

Result<int64_t> count(const JsonReader& value) {
  ASSIGN_OR_RETURN(auto read, value.optionalInteger(0, std::numeric_limits<int32_t>::max()));
  return read.value_or(0);
}

Result<int64_t> bytes(const JsonReader& value) {
  ASSIGN_OR_RETURN(auto read, value.optionalInteger(0));
  return read.value_or(0);
}

Result<SiteProgress> parseProgress(const JsonReader& progress) {
  SiteProgress result;
  ASSIGN_OR_RETURN(auto layers_done, count(progress["layersDone"]));
  ASSIGN_OR_RETURN(auto layers_total, count(progress["layersTotal"]));
  result.layers_done = static_cast<int>(layers_done);
  result.layers_total = static_cast<int>(layers_total);
  ASSIGN_OR_RETURN(result.bytes_done, bytes(progress["bytesDone"]));
  ASSIGN_OR_RETURN(result.bytes_total, bytes(progress["bytesTotal"]));
  return result;
}

Result<PublishedImage> parsePublished(const JsonReader& published) {
  PublishedImage image;
  ASSIGN_OR_RETURN(image.container, text(published["container"]));
  ASSIGN_OR_RETURN(image.image, text(published["image"]));
  ASSIGN_OR_RETURN(image.digest, text(published["digest"]));
  ASSIGN_OR_RETURN(image.path, text(published["path"]));
  ASSIGN_OR_RETURN(image.config_sha256, text(published["configSha256"]));
  ASSIGN_OR_RETURN(image.signature, text(published["signature"]));
  image.at = timeField(published["at"]).value_or(std::chrono::system_clock::time_point{});
  // State files from before tags were followed have no resolvedDigest: the manifest's digest
  // is what they resolved to unless the image was multi-platform (then one check re-pulls).
  ASSIGN_OR_RETURN(image.resolved_digest, text(published["resolvedDigest"]));
  if (image.resolved_digest.empty())
    image.resolved_digest = image.digest;
  return image;
}

// A list the daemon wrote (sidecars, containers), read with the same care as the rest.
template <typename Item, typename Parse>
Result<std::vector<Item>> parseList(const JsonReader& list, Parse parse) {
  std::vector<Item> items;
  if (list.missing())
    return items;
  ASSIGN_OR_RETURN(auto elements, list.elements());
  for (const auto& element : elements) {
    ASSIGN_OR_RETURN(Item item, parse(element));
    items.push_back(std::move(item));
  }
  return items;
}

}  // namespace

std::string siteStateJson(const SiteState& state) {
  json doc = {
      {"site", state.site},
      {"configFile", state.config_file},
      {"configSha256", state.config_sha256},
      {"image", state.image},
      {"phase", toString(state.phase)},
      {"progress", progressJson(state.progress)},
      {"attempts", state.attempts},
      {"lastError", nullptr},
      {"published", nullptr},
      {"lastAttemptAt", timeOrNull(state.last_attempt_at)},
      {"nextAttemptAt", timeOrNull(state.next_attempt_at)},
      {"lastCheckedAt", timeOrNull(state.last_checked_at)},
      {"continuousDeployment", state.continuous_deployment},
      {"updatedAt", formatUtc(state.updated_at)},
  };
  if (state.last_error) {
    doc["lastError"] = {{"phase", state.last_error->phase},
                        {"message", state.last_error->message},
                        {"at", formatUtc(state.last_error->at)}};
  }
  if (state.published)
    doc["published"] = publishedJson(*state.published);
  if (!state.sidecars.empty()) {
    doc["sidecars"] = json::array();
    for (const auto& image : state.sidecars)
      doc["sidecars"].push_back(publishedJson(image));
  }
  if (state.rolled_back)
    doc["rolledBack"] = true;
  if (!state.previous.empty()) {
    doc["previous"] = json::array();
    for (const auto& unit : state.previous) {
      json images = json::array();
      for (const auto& image : unit)
        images.push_back(publishedJson(image));
      doc["previous"].push_back(std::move(images));
    }
  }
  if (!state.containers.empty()) {
    doc["containers"] = json::array();
    for (const auto& container : state.containers) {
      doc["containers"].push_back({{"name", container.name},
                                   {"image", container.image},
                                   {"phase", container.phase},
                                   {"progress", progressJson(container.progress)}});
    }
  }
  return doc.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

Result<SiteState> parseSiteState(std::string_view json_text) {
  // Our own output, but read as input: another program or a person may have written it. Wrong
  // types are errors; missing parts take their defaults.
  ASSIGN_OR_RETURN(auto parsed, parseJson(json_text, "site state", ErrorCode::kInvalidArgument));
  const JsonReader doc(parsed, "site state", ErrorCode::kInvalidArgument);
  if (!doc.isObject())
    return doc.typeError("an object");
  SiteState state;
  ASSIGN_OR_RETURN(state.site, doc["site"].string());
  ASSIGN_OR_RETURN(state.config_file, text(doc["configFile"]));
  ASSIGN_OR_RETURN(state.config_sha256, text(doc["configSha256"]));
  ASSIGN_OR_RETURN(state.image, text(doc["image"]));
  ASSIGN_OR_RETURN(auto phase, text(doc["phase"]));
  state.phase = parseSitePhase(phase).value_or(SitePhase::kPending);
  ASSIGN_OR_RETURN(state.progress, parseProgress(doc["progress"]));
  ASSIGN_OR_RETURN(auto attempts, count(doc["attempts"]));
  state.attempts = static_cast<int>(attempts);
  if (const JsonReader error = doc["lastError"]; error.isObject()) {
    SiteError last{
        {}, {}, timeField(error["at"]).value_or(std::chrono::system_clock::time_point{})};
    ASSIGN_OR_RETURN(last.phase, text(error["phase"]));
    ASSIGN_OR_RETURN(last.message, text(error["message"]));
    state.last_error = std::move(last);
  }
  if (const JsonReader published = doc["published"]; published.isObject()) {
    ASSIGN_OR_RETURN(state.published, parsePublished(published));
  }
  ASSIGN_OR_RETURN(state.sidecars, parseList<PublishedImage>(doc["sidecars"], parsePublished));
  if (const JsonReader rolled_back = doc["rolledBack"]; !rolled_back.missing()) {
    ASSIGN_OR_RETURN(state.rolled_back, rolled_back.boolean());
  }
  ASSIGN_OR_RETURN(state.previous, parseList<std::vector<PublishedImage>>(
                                       doc["previous"], [](const JsonReader& unit) {
                                         return parseList<PublishedImage>(unit, parsePublished);
                                       }));
  // A unit is its images, each named by a digest: anything else is no unit to go back to.
  std::erase_if(state.previous, [](const std::vector<PublishedImage>& unit) {
    return unit.empty() || std::any_of(unit.begin(), unit.end(), [](const PublishedImage& image) {
             return !puller::Digest::parse(image.digest).ok();
           });
  });
  ASSIGN_OR_RETURN(state.containers,
                   parseList<ContainerActivity>(
                       doc["containers"], [](const JsonReader& item) -> Result<ContainerActivity> {
                         ContainerActivity container;
                         ASSIGN_OR_RETURN(container.name, text(item["name"]));
                         ASSIGN_OR_RETURN(container.image, text(item["image"]));
                         ASSIGN_OR_RETURN(container.phase, text(item["phase"]));
                         ASSIGN_OR_RETURN(container.progress, parseProgress(item["progress"]));
                         return container;
                       }));
  state.last_attempt_at = timeField(doc["lastAttemptAt"]);
  state.next_attempt_at = timeField(doc["nextAttemptAt"]);
  state.last_checked_at = timeField(doc["lastCheckedAt"]);
  ASSIGN_OR_RETURN(auto ci, doc["continuousDeployment"].optionalBoolean());
  state.continuous_deployment = ci.value_or(false);
  state.updated_at = timeField(doc["updatedAt"]).value_or(std::chrono::system_clock::time_point{});
  return state;
}

Status SiteStateStore::write(const SiteState& state) const {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec)
    return errnoError(ec.value(), "create directory", dir_);
  return writeFileAtomic(dir_ / (state.site + ".json"), siteStateJson(state));
}

Status SiteStateStore::remove(const std::string& site) const {
  const auto path = dir_ / (site + ".json");
  if (::unlink(path.c_str()) != 0 && errno != ENOENT)
    return errnoError(errno, "remove", path);
  return {};
}

std::vector<SiteState> SiteStateStore::readAll() const {
  std::vector<SiteState> states;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir_, ec)) {
    const auto& path = entry.path();
    if (path.extension() != ".json" || path.filename().string().starts_with("."))
      continue;
    const std::string file_name = path.filename().string();
    if (!isSiteFileName(file_name))
      continue;
    auto text = readRegularFile(path, kMaxStateFileBytes);
    auto state = text ? parseSiteState(text.value()) : Result<SiteState>(text.error());
    // The file name is the site's name: a state file cannot speak for another site or a path.
    if (state && state->site != file_name.substr(0, file_name.size() - 5)) {
      state = makeError(ErrorCode::kInvalidArgument, "its site field does not match the file name");
    }
    if (!state) {
      spdlog::warn("ignoring unreadable site state {}: {}", path.string(),
                   state.error().describe());
      continue;
    }
    states.push_back(std::move(state.value()));
  }
  std::sort(states.begin(), states.end(),
            [](const SiteState& a, const SiteState& b) { return a.site < b.site; });
  return states;
}

}  // namespace pullagent::agent
