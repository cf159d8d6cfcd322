#pragma once

#include <optional>
#include <string>
#include <vector>

#include "tests/support/scripted_http.h"

namespace pullagent::testing {

// A streamed answer as libcurl delivers it: the head through on_head, then the body in chunks
// through on_body; `cut_after` bytes into the body the connection drops.
inline ScriptedHttp::Handler stream(int status, std::string body,
                                    std::vector<puller::HttpHeader> headers = {},
                                    std::optional<size_t> cut_after = std::nullopt) {
  return [=](const puller::HttpRequest& request) -> puller::HttpResponse {
    puller::HttpResponse response = respond(status, "", headers);
    if (status < 200 || status >= 300) {
      response.body = body;
      return response;
    }
    if (request.on_head) {
      if (auto status_of_head = request.on_head(response); !status_of_head)
        throw status_of_head.error();
    }
    const std::string sent = cut_after ? body.substr(0, *cut_after) : body;
    for (size_t at = 0; at < sent.size(); at += 1000) {
      if (auto written = request.on_body(std::string_view(sent).substr(at, 1000)); !written)
        throw written.error();
    }
    if (cut_after)
      throw makeError(ErrorCode::kUnavailable, "connection reset by peer");
    return response;
  };
}

// The HttpClient contract: a failure inside on_head/on_body or of the connection is a
// Result error, never an exception. The fake turns the handlers' throws into that.
class StreamingHttp final : public puller::HttpClient {
 public:
  ScriptedHttp script;
  Result<puller::HttpResponse> send(const puller::HttpRequest& request,
                                    const Context& ctx) override {
    try {
      return script.send(request, ctx);
    } catch (const Error& error) {
      return error;
    }
  }
};

}  // namespace pullagent::testing
