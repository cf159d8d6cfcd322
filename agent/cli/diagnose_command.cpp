#include "agent/cli/diagnose_command.h"

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>
#include <variant>

#include "agent/cli/control_client.h"
#include "agent/common/args.h"
#include "agent/common/exit_codes.h"
#include "agent/config/config_files.h"
#include "agent/diagnose/site_diagnosis.h"
#include "agent/site/identity_pool.h"
#include "agent/site/site_state.h"
#include "base/redact.h"
#include "resolver/static_hosts_resolver.h"
#include "resolver/system_resolver.h"

namespace pullagent::agent {
namespace {

constexpr const char* kDiagnoseUsage =
    R"(usage: pullagent diagnose (SITE | --site SITE.json) [--config AGENT.json] [--socket PATH]
                          [--json]

Walks every step a pull of the site takes, from this host and as the service takes it (the
site's route and DNS, identities, credentials and Key Vault references), for each container:
DNS, TCP, TLS, the registry's challenge, the identity and registry tokens and what they grant,
the manifest and the host's platform, a layer's redirect to the data endpoint, mirrors, and the
state dir's room. Each step is ok, failed (with the fix) or skipped (when one it depends on
failed). Nothing is pulled or written; a running service is not disturbed.
  SITE               a site of the service: asked of the running service over its control
                     socket, which diagnoses it with its own environment and identities; when
                     the service is not running, <sitesDir>/SITE.json diagnosed here
  --socket PATH      the service's control socket (default: controlSocket of the agent config)
  --site FILE        a site config file (its ARM or `az webapp show` JSON)
  --config FILE      agent config (default /etc/pullagent/agent.json; defaults if it is absent)
  --json             {"site", "healthy", "steps": [{id, container, result, seconds, detail,
                     fix}], "first_failure", "exit_code"}
  --log-level LEVEL  trace, debug, info (default), warn, error
  --log-format FMT   text (default on a terminal), journal or json
Exit status: 0 when a pull would succeed, else that of the first failed step's class (3 auth,
4 not found, 5 network, 6 TLS or integrity, 1 other). The steps and their fixes:
docs/diagnose.md, man pullagent.
)";

constexpr std::chrono::milliseconds kServiceRequestTimeout{10000};
constexpr std::chrono::milliseconds kServicePollInterval{200};

void print(const nlohmann::json& report, bool json) {
  const std::string text =
      json ? report.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n"
           : diagnosisText(report);
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
}

int exitCodeOf(const nlohmann::json& report) {
  const auto code = report.find("exit_code");
  return code != report.end() && code->is_number_integer() ? code->get<int>() : kExitFailure;
}

// SITE's diagnosis by the running service: nullopt when no service listens on `socket` (the
// caller diagnoses here instead), an exit code when the service failed to give one.
std::optional<std::variant<nlohmann::json, int>> askService(const std::string& socket,
                                                            const std::string& site,
                                                            const std::stop_token& stop) {
  auto started = controlRequest(socket, "POST", "/v1/diagnose",
                                nlohmann::json{{"site", site}}.dump(), kServiceRequestTimeout);
  if (!started) {
    if (started.error().code == ErrorCode::kUnavailable)
      return std::nullopt;
    std::fprintf(stderr, "pullagent diagnose: %s\n", started.error().message.c_str());
    return exitCodeFor(started.error());
  }
  auto answer = nlohmann::json::parse(started->body, nullptr, false);
  if (started->status != 202 || !answer.is_object() || !answer["id"].is_number_unsigned()) {
    const bool said = answer.is_object() && answer["error"].is_string();
    std::fprintf(stderr, "pullagent diagnose: the service refused: %s\n",
                 safeEscaped(said ? answer["error"].get<std::string>() : started->body).c_str());
    return started->status == 400 ? kExitUsage : kExitFailure;
  }
  const std::string path = "/v1/diagnose/" + std::to_string(answer["id"].get<uint64_t>());
  // The service bounds the diagnosis by the site's attempt deadline; SIGINT ends the wait.
  while (!stop.stop_requested()) {
    auto polled = controlRequest(socket, "GET", path, "", kServiceRequestTimeout);
    if (!polled) {
      std::fprintf(stderr, "pullagent diagnose: %s\n", polled.error().message.c_str());
      return exitCodeFor(polled.error());
    }
    auto result = nlohmann::json::parse(polled->body, nullptr, false);
    if (polled->status != 200 || !result.is_object()) {
      std::fprintf(stderr, "pullagent diagnose: unexpected answer %ld from the service\n",
                   polled->status);
      return kExitFailure;
    }
    if (result["done"].is_boolean() && result["done"].get<bool>()) {
      nlohmann::json report = std::move(result["report"]);
      // Ids start again when the service does: a report of another site is not this one's.
      if (!report.is_object() || !report["site"].is_string() ||
          report["site"].get<std::string>() != site) {
        std::fprintf(stderr,
                     "pullagent diagnose: the service restarted during the diagnosis; "
                     "run it again\n");
        return kExitTransient;
      }
      report["diagnosed_by"] = "the service (control socket " + socket + ")";
      return report;
    }
    std::this_thread::sleep_for(kServicePollInterval);
  }
  return kExitTransient;
}

int runDiagnose(const ParsedArgs& args, const ProcessEnvironment& env,
                const Environment& environment) {
  const bool json = args.flag("json");
  const auto& named = args.positionals;
  if (named.empty() == !args.option("site")) {
    std::fprintf(stderr, "pullagent diagnose: give a SITE of the service or --site FILE (one)\n");
    return kExitUsage;
  }
  auto agent = loadAgentConfig(args.option("config"), environment);
  if (!agent) {
    std::fprintf(stderr, "pullagent diagnose: %s\n", agent.error().describe().c_str());
    return exitCodeFor(agent.error());
  }
  std::filesystem::path site_path;
  if (args.option("site")) {
    site_path = *args.option("site");
  } else {
    if (!isSiteFileName(named.front() + ".json")) {
      std::fprintf(stderr, "pullagent diagnose: %s is not a site name\n", named.front().c_str());
      return kExitUsage;
    }
    site_path = agent->sites_dir / (named.front() + ".json");
    const std::string socket = args.option("socket").value_or(agent->control_socket.string());
    auto asked = askService(socket, named.front(), env.stop);
    if (asked) {
      if (const int* code = std::get_if<int>(&*asked))
        return *code;
      const auto& report = std::get<nlohmann::json>(*asked);
      print(report, json);
      return exitCodeOf(report);
    }
    std::fprintf(stderr,
                 "pullagent diagnose: no service answers on %s: diagnosing %s from this "
                 "process\n",
                 socket.c_str(), site_path.c_str());
  }
  const std::string site_key = site_path.stem().string();
  // A file of the sites directory is a site of the service, whose published image the state
  // dir records; any other file is not.
  std::optional<std::string> service_site;
  std::error_code ignored;
  if (named.size() == 1 ||
      (isSiteFileName(site_path.filename().string()) &&
       std::filesystem::equivalent(site_path.parent_path().empty() ? "." : site_path.parent_path(),
                                   agent->sites_dir, ignored))) {
    service_site = site_key;
  }

  SystemClock clock;
  SystemRandom random;
  auto site = loadSiteConfig(site_path);
  if (!site) {
    const Diagnosis failed = configFailure(
        site_key, site.error(), "correct " + site_path.string() + " where the error points");
    print(failed.toJson(), json);
    return failed.exitCode();
  }
  resolver::SystemResolver system_resolver;
  resolver::StaticHostsResolver identity_resolver(agent->host_overrides, system_resolver);
  auto identity_http = createIdentityClient(agent.value(), identity_resolver);
  if (!identity_http) {
    std::fprintf(stderr, "pullagent diagnose: %s\n", identity_http.error().describe().c_str());
    return exitCodeFor(identity_http.error());
  }
  IdentityPool identities(**identity_http, clock, random, agent->identity);
  DiagnoseServices services{agent.value(), clock, random, identities, system_resolver};
  const Diagnosis diagnosis =
      diagnoseSite(services, site.value(), site_key, service_site, env.stop);
  nlohmann::json report = diagnosis.toJson();
  report["diagnosed_by"] = "this process";
  print(report, json);
  return diagnosis.exitCode();
}

}  // namespace

const Command& diagnoseCommand() {
  static const Command command{"diagnose",
                               "(SITE | --site SITE.json)",
                               "check every step of a site's route from this host, with fixes",
                               kDiagnoseUsage,
                               {"site", "config", "socket"},
                               {"json"},
                               0,
                               1,
                               {},
                               true,
                               runDiagnose};
  return command;
}

}  // namespace pullagent::agent
