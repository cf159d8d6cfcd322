#include "agent/daemon/site_state.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <ctime>
#include <fstream>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <sstream>

#include "base/atomic_file.h"

namespace pullagent::agent {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

constexpr std::array<std::pair<SitePhase, std::string_view>, 5> kPhases{{
    {SitePhase::kPending, "pending"},
    {SitePhase::kPulling, "pulling"},
    {SitePhase::kPublished, "published"},
    {SitePhase::kFailed, "failed"},
    {SitePhase::kInterrupted, "interrupted"},
}};

std::optional<std::chrono::system_clock::time_point> parseUtc(const std::string& text) {
  std::tm parts{};
  std::istringstream in(text);
  in >> std::get_time(&parts, "%Y-%m-%dT%H:%M:%SZ");
  if (in.fail())
    return std::nullopt;
  return std::chrono::system_clock::from_time_t(timegm(&parts));
}

json timeOrNull(const std::optional<std::chrono::system_clock::time_point>& at) {
  return at ? json(formatUtc(*at)) : json(nullptr);
}

std::optional<std::chrono::system_clock::time_point> timeField(const json& doc, const char* key) {
  if (!doc.contains(key) || !doc[key].is_string())
    return std::nullopt;
  return parseUtc(doc[key].get<std::string>());
}

}  // namespace

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

std::string siteStateJson(const SiteState& state) {
  json doc = {
      {"site", state.site},
      {"configFile", state.config_file},
      {"configSha256", state.config_sha256},
      {"image", state.image},
      {"phase", toString(state.phase)},
      {"progress",
       {{"layersDone", state.progress.layers_done},
        {"layersTotal", state.progress.layers_total},
        {"bytesDone", state.progress.bytes_done},
        {"bytesTotal", state.progress.bytes_total}}},
      {"attempts", state.attempts},
      {"lastError", nullptr},
      {"published", nullptr},
      {"lastAttemptAt", timeOrNull(state.last_attempt_at)},
      {"nextAttemptAt", timeOrNull(state.next_attempt_at)},
      {"updatedAt", formatUtc(state.updated_at)},
  };
  if (state.last_error) {
    doc["lastError"] = {{"phase", state.last_error->phase},
                        {"message", state.last_error->message},
                        {"at", formatUtc(state.last_error->at)}};
  }
  if (state.published) {
    doc["published"] = {{"image", state.published->image},
                        {"digest", state.published->digest},
                        {"path", state.published->path},
                        {"configSha256", state.published->config_sha256},
                        {"at", formatUtc(state.published->at)}};
  }
  return doc.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

Result<SiteState> parseSiteState(std::string_view json_text) {
  auto doc = json::parse(json_text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object() || !doc.contains("site") || !doc["site"].is_string())
    return makeError(ErrorCode::kInvalidArgument, "not a site state");
  SiteState state;
  auto text = [](const json& object, const char* key) {
    return object.contains(key) && object[key].is_string() ? object[key].get<std::string>()
                                                           : std::string();
  };
  auto number = [](const json& object, const char* key) -> int64_t {
    return object.contains(key) && object[key].is_number_integer() ? object[key].get<int64_t>() : 0;
  };
  state.site = text(doc, "site");
  state.config_file = text(doc, "configFile");
  state.config_sha256 = text(doc, "configSha256");
  state.image = text(doc, "image");
  state.phase = parseSitePhase(text(doc, "phase")).value_or(SitePhase::kPending);
  if (doc.contains("progress") && doc["progress"].is_object()) {
    const json& progress = doc["progress"];
    state.progress.layers_done = static_cast<int>(number(progress, "layersDone"));
    state.progress.layers_total = static_cast<int>(number(progress, "layersTotal"));
    state.progress.bytes_done = number(progress, "bytesDone");
    state.progress.bytes_total = number(progress, "bytesTotal");
  }
  state.attempts = static_cast<int>(number(doc, "attempts"));
  if (doc.contains("lastError") && doc["lastError"].is_object()) {
    const json& error = doc["lastError"];
    state.last_error =
        SiteError{text(error, "phase"), text(error, "message"),
                  timeField(error, "at").value_or(std::chrono::system_clock::time_point{})};
  }
  if (doc.contains("published") && doc["published"].is_object()) {
    const json& published = doc["published"];
    state.published = PublishedImage{
        text(published, "image"), text(published, "digest"), text(published, "path"),
        text(published, "configSha256"),
        timeField(published, "at").value_or(std::chrono::system_clock::time_point{})};
  }
  state.last_attempt_at = timeField(doc, "lastAttemptAt");
  state.next_attempt_at = timeField(doc, "nextAttemptAt");
  state.updated_at = timeField(doc, "updatedAt").value_or(std::chrono::system_clock::time_point{});
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
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    auto state = parseSiteState(text.str());
    if (!state) {
      spdlog::warn("ignoring unreadable site state {}", path.string());
      continue;
    }
    states.push_back(std::move(state.value()));
  }
  std::sort(states.begin(), states.end(),
            [](const SiteState& a, const SiteState& b) { return a.site < b.site; });
  return states;
}

}  // namespace pullagent::agent
