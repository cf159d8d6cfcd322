#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace pullagent {

// Deeper than any document we read legitimately (OCI configs and ARM templates stay under 20);
// nlohmann's copy, dump and comparison recurse, so depth is refused before they can run.
inline constexpr size_t kMaxJsonDepth = 64;

// Parses `text`, whose nesting is first bounded by a linear scan that does not recurse. Errors
// carry `code` and name `document` ("image config", "site config"): invalid JSON, with the byte
// offset, or nesting deeper than `max_depth`.
Result<nlohmann::json> parseJson(std::string_view text, std::string_view document,
                                 ErrorCode code = ErrorCode::kProtocol,
                                 size_t max_depth = kMaxJsonDepth);

// A short description of a value for error texts: its type and, for scalars, at most a few
// dozen characters of it. Never used for values that may hold a secret (see JsonReader::secret).
std::string previewJson(const nlohmann::json& value);

// A typed, read-only view of one value of a parsed document, with the JSON path that leads to
// it. Every accessor checks the type: a wrong type, a null, a missing required field or a number
// out of range is an Error (`code`) naming the document and the path, e.g.
// "image config: config.User: expected a string, got number 12". Nothing here throws.
class JsonReader {
 public:
  JsonReader(const nlohmann::json& root, std::string document,
             ErrorCode code = ErrorCode::kProtocol);

  // The member `key` (absent reads as missing) and the element `index`.
  JsonReader operator[](std::string_view key) const;
  JsonReader operator[](size_t index) const;

  // Error texts of this value and everything below it show its type only, never its content.
  JsonReader secret() const;

  bool missing() const;  // absent or null
  bool isObject() const { return value_->is_object(); }
  bool isArray() const { return value_->is_array(); }
  bool isString() const { return value_->is_string(); }
  const nlohmann::json& raw() const { return *value_; }
  const std::string& path() const { return path_; }
  std::string where() const;  // "image config: config.User"

  // Required values.
  Result<std::string> string() const;
  Result<int64_t> integer(int64_t min = std::numeric_limits<int64_t>::min(),
                          int64_t max = std::numeric_limits<int64_t>::max()) const;
  // Any finite JSON number, whole or fractional (1e400 parses as infinity and is refused).
  Result<double> number() const;
  Result<bool> boolean() const;
  // Members of an object, elements of an array.
  Result<std::vector<std::pair<std::string, JsonReader>>> members() const;
  Result<std::vector<JsonReader>> elements() const;

  // Optional values: missing or null gives nullopt; present with a wrong type is an error.
  Result<std::optional<std::string>> optionalString() const;
  Result<std::optional<int64_t>> optionalInteger(
      int64_t min = std::numeric_limits<int64_t>::min(),
      int64_t max = std::numeric_limits<int64_t>::max()) const;
  Result<std::optional<bool>> optionalBoolean() const;
  // An array of strings; missing or null reads as empty.
  Result<std::vector<std::string>> optionalStrings() const;

  // An object with no member but `allowed`: a misspelt key must not silently weaken what the
  // document says. The error names the first other member ("…: policy.defualt: unknown key").
  Status onlyKeys(std::initializer_list<std::string_view> allowed) const;

  // An error about this value: "<document>: <path>: <why>".
  Error error(std::string_view why) const;
  Error typeError(std::string_view expected) const;

 private:
  JsonReader(std::shared_ptr<const std::string> document, const nlohmann::json* value,
             std::string path, ErrorCode code, bool secret);

  std::shared_ptr<const std::string> document_;
  const nlohmann::json* value_;
  std::string path_;
  ErrorCode code_;
  bool secret_ = false;
};

}  // namespace pullagent
