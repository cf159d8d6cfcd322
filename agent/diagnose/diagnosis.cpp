#include "agent/diagnose/diagnosis.h"

#include <algorithm>
#include <cstdio>

#include "agent/common/exit_codes.h"

namespace pullagent::agent {

const std::vector<StepDefinition>& stepCatalog() {
  static const std::vector<StepDefinition> steps{
      {"site.config", "the site config parses; its containers and images"},
      {"site.route", "VNet or public route, the DNS servers, and the settings that decided"},
      {"site.credentials",
       "which credentials a container pulls with, and the setting that decided"},
      {"site.key-vault", "each Key Vault reference reads: vault, secret, version, identity used"},
      {"dns.registry",
       "the registry's name on the route: CNAME chain, addresses, private or public"},
      {"tcp.registry", "a TCP connection to the registry, from the route's source"},
      {"tls.registry", "the registry's certificate: chain, the name checked, expiry, trusted CAs"},
      {"http.challenge", "GET /v2/ without credentials: the challenge (realm, service)"},
      {"identity.token", "a managed-identity token for ACR: endpoint, client id, assignment"},
      {"registry.token",
       "the registry's token (ACR exchange, token server or Basic) and the "
       "scope it grants"},
      {"registry.manifest",
       "the tag or digest: digest, media type, platforms, the host's among them"},
      {"registry.config", "the image config blob exists for these credentials"},
      {"registry.blob", "one layer blob: served by the registry or redirected (where to)"},
      {"dns.data-endpoint", "the redirect target's name on the same route"},
      {"http.data-endpoint", "the redirect target answers on the same route (no credentials sent)"},
      {"host.mirrors", "hosts.toml mirrors that apply to the registry, and whether they answer"},
      {"host.state-dir", "the state dir is writable and has room for the images"},
      {"host.published", "the image the site has published now, and its age"},
  };
  return steps;
}

std::string_view toString(StepResult result) {
  switch (result) {
    case StepResult::kOk:
      return "ok";
    case StepResult::kWarning:
      return "warning";
    case StepResult::kFailed:
      return "failed";
    case StepResult::kSkipped:
      break;
  }
  return "skipped";
}

const DiagnosisStep* Diagnosis::firstFailure() const {
  auto it = std::find_if(steps.begin(), steps.end(), [](const DiagnosisStep& step) {
    return step.result == StepResult::kFailed;
  });
  return it == steps.end() ? nullptr : &*it;
}

int Diagnosis::exitCode() const {
  const DiagnosisStep* failed = firstFailure();
  if (failed == nullptr)
    return kExitOk;
  return failed->error ? exitCodeFor(*failed->error) : kExitFailure;
}

nlohmann::json Diagnosis::toJson() const {
  nlohmann::json out = {{"site", site}, {"healthy", firstFailure() == nullptr}};
  out["steps"] = nlohmann::json::array();
  for (const auto& step : steps) {
    nlohmann::json entry = {{"id", step.id},
                            {"container", step.container},
                            {"result", toString(step.result)},
                            {"seconds", static_cast<double>(step.took.count()) / 1000.0},
                            {"detail", step.detail}};
    entry["fix"] = step.fix.empty() ? nlohmann::json(nullptr) : nlohmann::json(step.fix);
    out["steps"].push_back(std::move(entry));
  }
  if (const DiagnosisStep* failed = firstFailure())
    out["first_failure"] = failed->id;
  out["exit_code"] = exitCode();
  return out;
}

Diagnosis configFailure(const std::string& site, const Error& error, std::string fix) {
  Diagnosis failed;
  failed.site = site;
  DiagnosisStep step;
  step.id = "site.config";
  step.result = StepResult::kFailed;
  step.detail = error.describe();
  step.fix = std::move(fix);
  step.error = error;
  failed.steps.push_back(std::move(step));
  return failed;
}

std::string Diagnosis::toText() const {
  return diagnosisText(toJson());
}

std::string diagnosisText(const nlohmann::json& report) {
  auto text_of = [](const nlohmann::json& entry, const char* key) {
    if (!entry.is_object())
      return std::string();
    const auto it = entry.find(key);
    return it != entry.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  // A report may come from the service: every field is checked for its type before use.
  static const nlohmann::json kNoSteps = nlohmann::json::array();
  const auto found = report.is_object() ? report.find("steps") : report.end();
  const nlohmann::json& steps = found != report.end() && found->is_array() ? *found : kNoSteps;
  std::string text;
  char line[96];
  for (const auto& step : steps) {
    if (!step.is_object())
      continue;
    const std::string container = text_of(step, "container");
    const auto seconds = step.find("seconds");
    std::snprintf(line, sizeof line, "%-7s %-19s %-10s %6.2f s  ", text_of(step, "result").c_str(),
                  text_of(step, "id").c_str(), container.empty() ? "-" : container.c_str(),
                  seconds != step.end() && seconds->is_number() ? seconds->get<double>() : 0.0);
    text += line + text_of(step, "detail") + "\n";
    if (const std::string fix = text_of(step, "fix"); !fix.empty())
      text += std::string(45, ' ') + "fix: " + fix + "\n";
  }
  const std::string first = text_of(report, "first_failure");
  if (first.empty()) {
    text += "\nevery step ok: a pull of this site would succeed\n";
    return text;
  }
  std::string where;
  for (const auto& step : steps) {
    if (step.is_object() && text_of(step, "result") == "failed") {
      where = text_of(step, "container");
      break;
    }
  }
  text += "\nfirst failure: " + first + (where.empty() ? "" : " (" + where + ")") + "\n";
  return text;
}

}  // namespace pullagent::agent
