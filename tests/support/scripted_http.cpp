#include "tests/support/scripted_http.h"

namespace pullagent::testing {

Result<puller::HttpResponse> ScriptedHttp::send(const puller::HttpRequest& request,
                                                const Context&) {
  Handler handler;
  {
    std::lock_guard lock(mutex_);
    std::vector<puller::HttpHeader> headers = request.headers;
    for (const auto& [name, value] : request.secret_headers)
      headers.push_back({name, value.revealForWire()});
    sent_.push_back({request.method, request.url,
                     request.authorization ? request.authorization->revealForWire() : "",
                     request.body, std::move(headers)});
    if (script_.empty()) {
      return makeError(ErrorCode::kInternal, "unexpected request " + request.url);
    }
    handler = std::move(script_.front());
    script_.pop_front();
  }
  return handler(request);
}

puller::HttpResponse respond(int status, std::string body,
                             std::vector<puller::HttpHeader> headers) {
  puller::HttpResponse response;
  response.status = status;
  response.body = std::move(body);
  response.headers = std::move(headers);
  return response;
}

}  // namespace pullagent::testing
