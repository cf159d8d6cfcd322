#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "base/error.h"
#include "base/unique_fd.h"

namespace pullagent::agent {

// Serves GET /metrics over plain HTTP/1.1 (one request per connection) on a TCP address
// ("127.0.0.1:9464", "[::1]:9464") or a unix socket ("unix:/run/pullagent/metrics.sock"), from
// its own thread. Anything else gets 404 / 405; slow or oversized requests are dropped.
class MetricsServer {
 public:
  using Render = std::function<std::string()>;
  static Result<std::unique_ptr<MetricsServer>> start(const std::string& address, Render render);
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // The bound address ("127.0.0.1:41234" when port 0 was asked for; the socket path for unix).
  const std::string& address() const { return bound_; }

 private:
  MetricsServer(UniqueFd listener, std::string bound, Render render);
  void serve(std::stop_token stop);
  void answer(int client);

  UniqueFd listener_;
  UniqueFd wake_;
  std::string bound_;
  std::string unix_path_;
  Render render_;
  std::jthread thread_;
};

}  // namespace pullagent::agent
