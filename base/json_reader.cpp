#include "base/json_reader.h"

#include <algorithm>
#include <cmath>

#include "base/redact.h"

namespace pullagent {
namespace {

const nlohmann::json& nullValue() {
  static const nlohmann::json kNull;
  return kNull;
}

// The deepest nesting of arrays and objects in `text`, ignoring brackets inside strings. Stops
// counting at `limit` + 1: only whether the limit is passed matters.
size_t nestingDepth(std::string_view text, size_t limit) {
  size_t depth = 0;
  size_t deepest = 0;
  bool in_string = false;
  bool escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
      if (deepest > limit)
        return deepest;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

std::string typeName(const nlohmann::json& value) {
  if (value.is_number_float())
    return "fractional number";
  if (value.is_number())
    return "number";
  return value.type_name();
}

}  // namespace

Result<nlohmann::json> parseJson(std::string_view text, std::string_view document, ErrorCode code,
                                 size_t max_depth) {
  if (nestingDepth(text, max_depth) > max_depth) {
    return makeError(code, std::string(document) + ": JSON nested deeper than " +
                               std::to_string(max_depth) + " levels");
  }
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    return makeError(
        code, std::string(document) + ": not valid JSON (at byte " + std::to_string(e.byte) + ")");
  } catch (const std::exception&) {
    return makeError(code, std::string(document) + ": not valid JSON");
  }
}

std::string previewJson(const nlohmann::json& value) {
  constexpr size_t kShown = 40;
  if (value.is_object())
    return "an object of " + std::to_string(value.size()) + " members";
  if (value.is_array())
    return "an array of " + std::to_string(value.size()) + " elements";
  if (value.is_null())
    return "null";
  if (value.is_string())
    return "string " + safeQuoted(value.get_ref<const std::string&>(), kShown);
  // Scalars: dump cannot throw (no strings involved) and is short.
  return typeName(value) + " " + value.dump();
}

JsonReader::JsonReader(const nlohmann::json& root, std::string document, ErrorCode code)
    : JsonReader(std::make_shared<const std::string>(std::move(document)), &root, "", code, false) {
}

JsonReader::JsonReader(std::shared_ptr<const std::string> document, const nlohmann::json* value,
                       std::string path, ErrorCode code, bool secret)
    : document_(std::move(document)),
      value_(value),
      path_(std::move(path)),
      code_(code),
      secret_(secret) {}

JsonReader JsonReader::operator[](std::string_view key) const {
  const nlohmann::json* child = &nullValue();
  if (value_->is_object()) {
    auto it = value_->find(key);
    if (it != value_->end())
      child = &*it;
  }
  std::string path = path_.empty() ? std::string(key) : path_ + "." + std::string(key);
  return JsonReader(document_, child, std::move(path), code_, secret_);
}

JsonReader JsonReader::operator[](size_t index) const {
  const nlohmann::json* child = &nullValue();
  if (value_->is_array() && index < value_->size())
    child = &(*value_)[index];
  return JsonReader(document_, child, path_ + "[" + std::to_string(index) + "]", code_, secret_);
}

JsonReader JsonReader::secret() const {
  return JsonReader(document_, value_, path_, code_, true);
}

bool JsonReader::missing() const {
  return value_->is_null();
}

std::string JsonReader::where() const {
  return *document_ + ": " + (path_.empty() ? "$" : path_);
}

Error JsonReader::error(std::string_view why) const {
  return makeError(code_, where() + ": " + std::string(why));
}

Error JsonReader::typeError(std::string_view expected) const {
  if (value_->is_null())
    return error("missing (expected " + std::string(expected) + ")");
  std::string got = secret_ ? typeName(*value_) : previewJson(*value_);
  return error("expected " + std::string(expected) + ", got " + got);
}

Result<std::string> JsonReader::string() const {
  if (!value_->is_string())
    return typeError("a string");
  return value_->get<std::string>();
}

Result<int64_t> JsonReader::integer(int64_t min, int64_t max) const {
  const std::string range =
      "a whole number from " + std::to_string(min) + " to " + std::to_string(max);
  if (value_->is_number_unsigned()) {
    auto v = value_->get<uint64_t>();
    if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
        static_cast<int64_t>(v) > max || static_cast<int64_t>(v) < min)
      return typeError(range);
    return static_cast<int64_t>(v);
  }
  if (!value_->is_number_integer())
    return typeError(range);
  auto v = value_->get<int64_t>();
  if (v < min || v > max)
    return typeError(range);
  return v;
}

Result<double> JsonReader::number() const {
  if (!value_->is_number() || !std::isfinite(value_->get<double>()))
    return typeError("a number");
  return value_->get<double>();
}

Result<bool> JsonReader::boolean() const {
  if (!value_->is_boolean())
    return typeError("true or false");
  return value_->get<bool>();
}

Result<std::vector<std::pair<std::string, JsonReader>>> JsonReader::members() const {
  if (!value_->is_object())
    return typeError("an object");
  std::vector<std::pair<std::string, JsonReader>> out;
  out.reserve(value_->size());
  for (auto it = value_->begin(); it != value_->end(); ++it) {
    std::string path = path_.empty() ? it.key() : path_ + "." + it.key();
    out.emplace_back(it.key(), JsonReader(document_, &it.value(), std::move(path), code_, secret_));
  }
  return out;
}

Result<std::vector<JsonReader>> JsonReader::elements() const {
  if (!value_->is_array())
    return typeError("an array");
  std::vector<JsonReader> out;
  out.reserve(value_->size());
  for (size_t i = 0; i < value_->size(); ++i)
    out.push_back((*this)[i]);
  return out;
}

Result<std::optional<std::string>> JsonReader::optionalString() const {
  if (missing())
    return std::optional<std::string>();
  ASSIGN_OR_RETURN(auto value, string());
  return std::optional<std::string>(std::move(value));
}

Result<std::optional<int64_t>> JsonReader::optionalInteger(int64_t min, int64_t max) const {
  if (missing())
    return std::optional<int64_t>();
  ASSIGN_OR_RETURN(auto value, integer(min, max));
  return std::optional<int64_t>(value);
}

Result<std::optional<bool>> JsonReader::optionalBoolean() const {
  if (missing())
    return std::optional<bool>();
  ASSIGN_OR_RETURN(auto value, boolean());
  return std::optional<bool>(value);
}

Result<std::vector<std::string>> JsonReader::optionalStrings() const {
  std::vector<std::string> out;
  if (missing())
    return out;
  ASSIGN_OR_RETURN(auto items, elements());
  out.reserve(items.size());
  for (const auto& item : items) {
    ASSIGN_OR_RETURN(auto text, item.string());
    out.push_back(std::move(text));
  }
  return out;
}

Status JsonReader::onlyKeys(std::initializer_list<std::string_view> allowed) const {
  ASSIGN_OR_RETURN(auto all, members());
  for (const auto& [key, member] : all) {
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end())
      return member.error("unknown key");
  }
  return {};
}

}  // namespace pullagent
