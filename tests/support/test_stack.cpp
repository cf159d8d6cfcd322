#include "tests/support/test_stack.h"

#include <unistd.h>

#include <cstdlib>
#include <stdexcept>

#include "base/clock.h"
#include "puller/http/curl_http_client.h"
#include "resolver/system_resolver.h"

namespace pullagent::testing {

TestStack& TestStack::shared() {
  // Lives until exit, past every static that might still use it; at exit the stack's process
  // is stopped and its directory removed. Only by the process that started it: a forked child
  // (a death test) that exits must not take the stack away from its parent.
  static TestStack* stack = [] {
    auto* started = new TestStack();
    static const pid_t owner = ::getpid();
    std::atexit([] {
      if (::getpid() == owner)
        delete stack;
    });
    return started;
  }();
  return *stack;
}

TestStack::TestStack() {
  process_ = std::make_unique<BackgroundProcess>(std::vector<std::string>{
      PULLAGENT_TEST_PYTHON, PULLAGENT_STACK_SCRIPT, "--dir", dir_.path().string()});
  if (!process_->waitForLine("READY", std::chrono::seconds(120))) {
    throw std::runtime_error("the test registry stack did not start; see " + dir_.path().string() +
                             "/*/registry.log");
  }
  info_ = nlohmann::json::parse(readFile(dir_ / "stack.json"));
}

puller::HttpClient& TestStack::controlClient(const std::string& server) const {
  std::lock_guard lock(control_clients_mutex_);
  auto& client = control_clients_[server];
  if (!client) {
    static resolver::SystemResolver resolver;
    puller::HttpClientOptions options;
    options.resolver = &resolver;
    options.extra_ca_file = ca();
    auto created = puller::CurlHttpClient::create(options);
    if (!created)
      throw std::runtime_error(created.error().describe());
    client = std::move(*created);
  }
  return *client;
}

TestStack::~TestStack() = default;

std::string TestStack::registry(const std::string& name) const {
  return info_["registries"][name];
}

std::string TestStack::proxy(const std::string& name) const {
  return info_["proxies"][name];
}

nlohmann::json TestStack::control(const std::string& server, const std::string& what,
                                  const std::string& body) const {
  static SystemClock clock;
  puller::HttpRequest request;
  request.url = (server.starts_with("http") ? server : "https://" + server) + "/__control/" + what;
  request.method = body.empty() && what == "stats" ? "GET" : "POST";
  request.body = body;
  Context ctx{&clock, {}, std::nullopt};
  auto response = controlClient(server).send(request, ctx);
  if (!response) {
    throw std::runtime_error("control " + what + " on " + server +
                             " failed: " + response.error().describe());
  }
  if (response->status != 200) {
    throw std::runtime_error("control " + what + " on " + server + " failed: HTTP " +
                             std::to_string(response->status) + " " + response->body);
  }
  return nlohmann::json::parse(response->body);
}

nlohmann::json TestStack::stats(const std::string& server) const {
  return control(server, "stats", "");
}

void TestStack::reset(const std::string& server) const {
  control(server, "reset", "{}");
}

void TestStack::setFaults(const std::string& server, const nlohmann::json& faults) const {
  control(server, "faults", faults.dump());
}

void TestStack::configure(const std::string& server, const nlohmann::json& settings) const {
  control(server, "config", settings.dump());
}

void TestStack::retag(const std::string& server, const std::string& tag,
                      const std::string& to) const {
  control(server, "retag", nlohmann::json{{"tag", tag}, {"to", to}}.dump());
}

}  // namespace pullagent::testing
