#include "agent/cli/refresh_command.h"

#include <charconv>
#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "agent/cli/control_client.h"
#include "agent/common/args.h"
#include "agent/common/exit_codes.h"
#include "agent/common/log_options.h"
#include "agent/config/config_files.h"
#include "base/json_reader.h"
#include "base/redact.h"

namespace pullagent::agent {
namespace {

constexpr const char* kRefreshUsage =
    R"(usage: pullagent refresh [SITE...] [--config AGENT.json | --socket PATH] [--no-wait]
                         [--timeout SECONDS]

Asks the running service to resolve the sites' tags again now (every site when none is named):
a site whose tag points at a new image is pulled (only the changed layers) and republished, the
old image serving until then; an unchanged tag costs one manifest request. Waits for the outcome
and prints it per site.
  --config FILE     agent config naming the control socket (default /etc/pullagent/agent.json)
  --socket PATH     the control socket itself
  --no-wait         return once the service has the request
  --timeout SECONDS how long to wait for the outcome (default 900)
Exit code: 0 when every site is unchanged, updated or pinned to a digest; 4 when a site is
unknown; otherwise that of the first failure (see pullagent --help).
)";

constexpr std::chrono::milliseconds kRequestTimeout{10000};
constexpr std::chrono::milliseconds kPollInterval{250};

std::string digestPrefix(const std::string& digest) {
  return digest.size() > 19 ? digest.substr(0, 19) : digest;
}

// One line per site, and the exit code they add up to.
int printOutcome(const nlohmann::json& report) {
  int exit_code = kExitOk;
  for (const auto& site : report["sites"]) {
    const std::string name = safeEscaped(site.value("site", ""));
    const std::string outcome = site.value("outcome", "");
    if (outcome == "unchanged") {
      std::cout << name << ": unchanged (" << digestPrefix(site.value("from", "")) << ")\n";
    } else if (outcome == "updated") {
      std::cout << name << ": updated " << digestPrefix(site.value("from", "-")) << " → "
                << digestPrefix(site.value("to", "")) << "\n";
    } else if (outcome == "pinned") {
      std::cout << name << ": pinned to a digest, not refreshed\n";
    } else if (outcome == "stopped") {
      std::cout << name << ": stopped, not refreshed (its tag is checked when it starts)\n";
    } else if (outcome == "unknown") {
      std::cout << name << ": no such site\n";
      exit_code = exit_code == kExitOk ? kExitNotFound : exit_code;
    } else {
      std::cout << name << ": failed: " << safeEscaped(site.value("error", ""), 2000) << "\n";
      exit_code = exit_code == kExitOk ? kExitFailure : exit_code;
    }
  }
  return exit_code;
}

}  // namespace

int askServiceAndWait(const ParsedArgs& args, const ProcessEnvironment& env,
                      const Environment& environment, const std::string& command,
                      const std::string& path, const nlohmann::json& request) {
  const std::string who = "pullagent " + command + ": ";
  int timeout_seconds = 900;
  if (auto text = args.option("timeout")) {
    auto [end, error] = std::from_chars(text->data(), text->data() + text->size(), timeout_seconds);
    if (error != std::errc() || end != text->data() + text->size() || timeout_seconds < 1) {
      std::cerr << who << "--timeout: expected a number of seconds, got " << safeQuoted(*text)
                << "\n";
      return kExitUsage;
    }
  }
  std::string socket;
  if (auto socket_path = args.option("socket")) {
    socket = *socket_path;
  } else {
    auto agent = loadAgentConfig(args.option("config"), environment);
    if (!agent) {
      std::cerr << who << agent.error().describe() << "\n";
      return exitCodeFor(agent.error());
    }
    socket = agent->control_socket.string();
  }

  auto started = controlRequest(socket, "POST", path, request.dump(), kRequestTimeout);
  if (!started) {
    std::cerr << who << started.error().message << "\n";
    return exitCodeFor(started.error());
  }
  auto answer = nlohmann::json::parse(started->body, nullptr, false);
  if (started->status != 202 || !answer.is_object() || !answer["id"].is_number_unsigned()) {
    std::cerr << who << "the service refused: "
              << safeEscaped(answer.is_object() ? answer.value("error", started->body)
                                                : started->body)
              << "\n";
    return started->status == 400 ? kExitUsage : kExitFailure;
  }
  const uint64_t id = answer["id"];
  if (args.flag("no-wait")) {
    std::cout << command << " " << id << " queued\n";
    return kExitOk;
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_seconds);
  while (!env.stop.stop_requested() && std::chrono::steady_clock::now() < deadline) {
    auto polled =
        controlRequest(socket, "GET", "/v1/refresh/" + std::to_string(id), "", kRequestTimeout);
    if (!polled) {
      std::cerr << who << polled.error().message << "\n";
      return exitCodeFor(polled.error());
    }
    auto report = nlohmann::json::parse(polled->body, nullptr, false);
    if (polled->status != 200 || !report.is_object()) {
      std::cerr << who << command << " " << id << ": unexpected answer " << polled->status << "\n";
      return kExitFailure;
    }
    if (report.value("done", false))
      return printOutcome(report);
    std::this_thread::sleep_for(kPollInterval);
  }
  std::cerr << who << "stopped waiting; " << command << " " << id
            << " goes on in the service (pullagent status shows it)\n";
  return kExitTransient;
}

namespace {

int runRefresh(const ParsedArgs& args, const ProcessEnvironment& env,
               const Environment& environment) {
  return askServiceAndWait(args, env, environment, "refresh", "/v1/refresh",
                           nlohmann::json{{"sites", args.positionals}});
}

}  // namespace

const Command& refreshCommand() {
  static const Command command{"refresh",
                               "[SITE...] [--no-wait]",
                               "have the service re-resolve the sites' tags now",
                               kRefreshUsage,
                               {"config", "socket", "timeout"},
                               {"no-wait"},
                               0,
                               Command::kAny,
                               {},
                               false,
                               runRefresh};
  return command;
}

}  // namespace pullagent::agent
