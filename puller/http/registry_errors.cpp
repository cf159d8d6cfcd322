#include "puller/http/registry_errors.h"

#include <string>

#include "base/json_reader.h"

#include "puller/http/retry.h"

namespace pullagent::puller {
namespace {

// Printable, single-line, bounded: peer text goes into our logs.
std::string sanitize(std::string_view text, size_t limit = 300) {
  std::string out;
  for (char c : text.substr(0, limit)) {
    out.push_back((c >= 0x20 && c < 0x7f) ? c : ' ');
  }
  if (text.size() > limit)
    out += "...";
  return out;
}

std::string stringOr(const nlohmann::json& object, const char* key, std::string fallback) {
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : fallback;
}

// The registry's own words for the failure, best effort: whatever shape the body has, this
// only picks out strings and never fails.
std::string registryText(const HttpResponse& response) {
  auto parsed = parseJson(response.body, "error body");
  if (parsed && parsed->is_object()) {
    const nlohmann::json& doc = parsed.value();
    auto errors = doc.find("errors");
    if (errors != doc.end() && errors->is_array()) {
      std::string text;
      for (const auto& entry : *errors) {
        if (!entry.is_object() || text.size() > 600)
          continue;
        std::string code = stringOr(entry, "code", "UNKNOWN");
        std::string message = stringOr(entry, "message", "");
        if (!text.empty())
          text += "; ";
        text += sanitize(code, 64) + (message.empty() ? "" : ": " + sanitize(message));
      }
      if (!text.empty())
        return text;
    }
    if (auto details = stringOr(doc, "details", ""); !details.empty())
      return sanitize(details);
  }
  return sanitize(response.body, 200);
}

}  // namespace

Error registryError(const HttpResponse& response, std::string_view what,
                    std::chrono::system_clock::time_point now) {
  const int status = response.status;
  ErrorCode code = ErrorCode::kProtocol;
  if (status == 401) {
    code = ErrorCode::kUnauthenticated;
  } else if (status == 403) {
    code = ErrorCode::kPermissionDenied;
  } else if (status == 404) {
    code = ErrorCode::kNotFound;
  } else if (status == 408 || status == 429 || status >= 500) {
    code = ErrorCode::kUnavailable;
  } else if (status == 400) {
    code = ErrorCode::kInvalidArgument;
  }
  std::string text = registryText(response);
  Error error = makeError(code,
                          std::string(what) + ": HTTP " + std::to_string(status) +
                              (text.empty() ? "" : " (" + text + ")"),
                          status);
  if (code == ErrorCode::kUnavailable) {
    if (auto retry_after = response.header("Retry-After")) {
      error.retry_after = parseRetryAfter(*retry_after, now);
    }
  }
  return error;
}

}  // namespace pullagent::puller
