#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include <nlohmann/json.hpp>

#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

namespace pullagent::puller {
class HttpClient;
}

namespace pullagent::testing {

// The local registry stack (tests/support/stack.py): real docker-registry instances with TLS,
// the token server, fault proxies and the blob-storage host, started once per test process.
class TestStack {
 public:
  // Starts the stack on first use; later calls return the same one.
  static TestStack& shared();
  ~TestStack();

  const nlohmann::json& info() const { return info_; }
  std::string registry(const std::string& name) const;  // "anon", "basic", "token"
  std::string proxy(const std::string& name) const;     // "proxy_token", "proxy_anon"
  std::string tokenServer() const { return info_["token_server"]; }
  std::string storage() const { return info_["storage"]; }
  std::string storageHttp() const { return info_["storage_http"]; }
  std::string ca() const { return info_["ca"]; }
  std::string otherCa() const { return info_["other_ca"]; }
  const nlohmann::json& image(const std::string& name) const { return info_["images"][name]; }

  // The control API every server of the stack has (/__control/...), by host:port or URL.
  nlohmann::json stats(const std::string& server) const;
  void reset(const std::string& server) const;
  void setFaults(const std::string& server, const nlohmann::json& faults) const;
  void configure(const std::string& server, const nlohmann::json& settings) const;
  // The emulated ACR (its control address): points `tag` of privatewebsite at the image `to`
  // ("lnx-v1", "lnx-v2") as a push would.
  void retag(const std::string& server, const std::string& tag, const std::string& to) const;

 private:
  TestStack();
  nlohmann::json control(const std::string& server, const std::string& what,
                         const std::string& body) const;

  TempDir dir_{"pullagent-stack"};
  std::unique_ptr<BackgroundProcess> process_;
  nlohmann::json info_;
  // A client per server for its control requests, so that each keeps its connection alive: a
  // new TLS connection per request parsed the system CA bundle and made a handshake each time
  // (under ASan, the seven resets of a fixture's SetUp took 1.3 s), and one client for all
  // servers keeps only five connections, fewer than a SetUp visits in turn.
  puller::HttpClient& controlClient(const std::string& server) const;
  mutable std::mutex control_clients_mutex_;
  mutable std::map<std::string, std::unique_ptr<puller::HttpClient>> control_clients_;
};

}  // namespace pullagent::testing
