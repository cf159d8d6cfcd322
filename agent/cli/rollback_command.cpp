#include "agent/cli/rollback_command.h"

#include <nlohmann/json.hpp>

#include "agent/cli/refresh_command.h"

namespace pullagent::agent {
namespace {

constexpr const char* kRollbackUsage =
    R"(usage: pullagent rollback SITE [--config AGENT.json | --socket PATH] [--no-wait]
                          [--timeout SECONDS]

Asks the running service to publish the site's previous image again, without a pull: each
site keeps keepPreviousImages previous images (with their sidecars) while space allows. The
image it leaves becomes the previous one (a second rollback goes forward again). The site stays
on it, its tag unchecked, until its config changes or `pullagent refresh` asks. Under a
signature policy (signaturePolicy, notationDir, imageVerifierDir) the policies decide the
previous image again first, as at any publish; otherwise it happens at once. Fails when the
site keeps no previous image, when eviction took it, while the site pulls, or when the
policies refuse it (the site stays where it is).
  --config FILE     agent config naming the control socket (default /etc/pullagent/agent.json)
  --socket PATH     the control socket itself
  --no-wait         return once the service has the request
  --timeout SECONDS how long to wait for the outcome (default 900)
Exit code: 0 when the site was rolled back; 4 when the site is unknown; otherwise 1.
)";

int runRollback(const ParsedArgs& args, const ProcessEnvironment& env,
                const Environment& environment) {
  return askServiceAndWait(args, env, environment, "rollback", "/v1/rollback",
                           nlohmann::json{{"site", args.positionals.at(0)}});
}

}  // namespace

const Command& rollbackCommand() {
  static const Command command{"rollback",
                               "SITE [--no-wait]",
                               "have the service publish a site's previous image again",
                               kRollbackUsage,
                               {"config", "socket", "timeout"},
                               {"no-wait"},
                               1,
                               1,
                               {},
                               false,
                               runRollback};
  return command;
}

}  // namespace pullagent::agent
