#include "agent/diagnose/walk.h"
#include "base/redact.h"

namespace pullagent::agent::walk {

void mirrorsStep(Walk& walk) {
  walk.log.begin();
  if (!walk.agent.registry_hosts_dir) {
    walk.log.skipped("host.mirrors", "no registryHostsDir in the agent config");
    return;
  }
  if (walk.hosts_error) {
    walk.log.failed("host.mirrors", *walk.hosts_error,
                    "correct the registry's hosts.toml in registryHostsDir");
    return;
  }
  std::vector<std::string> answered;
  std::vector<std::string> failed;
  for (const auto& source : walk.sources->sources()) {
    if (source.origin)
      continue;
    puller::HttpRequest request;
    request.url = source.scheme + "://" + source.host + source.api_root + "/";
    request.headers = source.headers;  // never the origin's credentials
    auto response = source.http->send(request, walk.ctx);
    const std::string name = safeEscaped(source.host);
    if (!response)
      failed.push_back(name + ": " + response.error().message);
    else
      answered.push_back(name + " answered HTTP " + std::to_string(response->status));
  }
  if (answered.empty() && failed.empty()) {
    walk.log.skipped("host.mirrors", "no mirror applies to " + walk.container.image.domain);
    return;
  }
  if (!failed.empty()) {
    // A pull passes over a mirror that fails: a warning, not a failure of the site.
    walk.log.warning("host.mirrors",
                     joined(failed, "; ") + (answered.empty() ? "" : "; " + joined(answered, "; ")),
                     "pulls fall through to the next source; fix the mirror or remove it from "
                     "its hosts.toml");
    return;
  }
  walk.log.ok("host.mirrors", joined(answered, "; "));
}

}  // namespace pullagent::agent::walk
