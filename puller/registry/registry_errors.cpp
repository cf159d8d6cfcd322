#include "puller/registry/registry_errors.h"

#include <nlohmann/json.hpp>

#include <string>

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

std::string registryText(const HttpResponse& response) {
  auto parsed = nlohmann::json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_object() && parsed.contains("errors") && parsed["errors"].is_array()) {
    std::string text;
    for (const auto& entry : parsed["errors"]) {
      if (!entry.is_object())
        continue;
      std::string code = entry.value("code", "UNKNOWN");
      std::string message = entry.contains("message") && entry["message"].is_string()
                                ? entry["message"].get<std::string>()
                                : "";
      if (!text.empty())
        text += "; ";
      text += sanitize(code, 64) + (message.empty() ? "" : ": " + sanitize(message));
    }
    if (!text.empty())
      return text;
  }
  if (parsed.is_object() && parsed.contains("details") && parsed["details"].is_string()) {
    return sanitize(parsed["details"].get<std::string>());
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
