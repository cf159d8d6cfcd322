#include "agent/cli/diagnose_command.h"

#include <cstdio>
#include <filesystem>

#include "agent/common/args.h"
#include "agent/common/exit_codes.h"
#include "agent/config/config_files.h"
#include "agent/diagnose/site_diagnosis.h"
#include "agent/site/identity_pool.h"
#include "agent/site/site_state.h"
#include "resolver/static_hosts_resolver.h"
#include "resolver/system_resolver.h"

namespace pullagent::agent {
namespace {

constexpr const char* kDiagnoseUsage =
    R"(usage: pullagent diagnose (SITE | --site SITE.json) [--config AGENT.json] [--json]

Walks every step a pull of the site takes, from this host and as the service takes it (the
site's route and DNS, identities, credentials and Key Vault references), for each container:
DNS, TCP, TLS, the registry's challenge, the identity and registry tokens and what they grant,
the manifest and the host's platform, a layer's redirect to the data endpoint, mirrors, and the
state dir's room. Each step is ok, failed (with the fix) or skipped (when one it depends on
failed). Nothing is pulled or written; a running service is not disturbed.
  SITE               a site of the service: <sitesDir>/SITE.json of the agent config
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

void print(const Diagnosis& diagnosis, bool json) {
  const std::string text = json ? diagnosis.toJson().dump(2) + "\n" : diagnosis.toText();
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
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
  }
  const std::string site_key = site_path.stem().string();

  SystemClock clock;
  SystemRandom random;
  auto site = loadSiteConfig(site_path);
  if (!site) {
    Diagnosis failed;
    failed.site = site_key;
    DiagnosisStep step;
    step.id = "site.config";
    step.result = StepResult::kFailed;
    step.detail = site.error().describe();
    step.fix = "correct " + site_path.string() + " where the error points";
    step.error = site.error();
    failed.steps.push_back(std::move(step));
    print(failed, json);
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
  const Diagnosis diagnosis = diagnoseSite(services, site.value(), site_key, env.stop);
  print(diagnosis, json);
  return diagnosis.exitCode();
}

}  // namespace

const Command& diagnoseCommand() {
  static const Command command{"diagnose",
                               "(SITE | --site SITE.json)",
                               "check every step of a site's route from this host, with fixes",
                               kDiagnoseUsage,
                               {"site", "config"},
                               {"json"},
                               0,
                               1,
                               {},
                               true,
                               runDiagnose};
  return command;
}

}  // namespace pullagent::agent
