#pragma once

#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "puller/http/http_client.h"

namespace pullagent::testing {

// An HttpClient for unit tests of the layers above HTTP: answers from a script (one handler per
// expected request, in order) and records every request as sent, Authorization included.
class ScriptedHttp final : public puller::HttpClient {
 public:
  using Handler = std::function<puller::HttpResponse(const puller::HttpRequest&)>;

  void expect(Handler handler) { script_.push_back(std::move(handler)); }
  Result<puller::HttpResponse> send(const puller::HttpRequest& request, const Context&) override;

  struct Sent {
    std::string method;
    std::string url;
    std::string authorization;  // "" when none
    std::string body;
    std::vector<puller::HttpHeader> headers;  // ordinary and secret headers, as sent
  };
  const std::vector<Sent>& sent() const { return sent_; }
  size_t pending() const { return script_.size(); }

 private:
  std::mutex mutex_;
  std::deque<Handler> script_;
  std::vector<Sent> sent_;
};

puller::HttpResponse respond(int status, std::string body = "",
                             std::vector<puller::HttpHeader> headers = {});

}  // namespace pullagent::testing
