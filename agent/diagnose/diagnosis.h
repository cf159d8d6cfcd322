#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace pullagent::agent {

// One step of a site's route, in the order a pull takes them. The ids are a fixed, documented
// list (stepCatalog(), docs/diagnose.md): tools match on them.
struct StepDefinition {
  std::string_view id;
  std::string_view checks;  // what the step looks at, one line
};
const std::vector<StepDefinition>& stepCatalog();

// kWarning: something to fix that does not stop a pull (a mirror that fails, which pulls pass
// over); it has a fix but does not count as a failure.
enum class StepResult { kOk, kWarning, kFailed, kSkipped };
std::string_view toString(StepResult result);

struct DiagnosisStep {
  std::string id;         // from stepCatalog()
  std::string container;  // the container's label; "" for a step of the whole site
  StepResult result = StepResult::kOk;
  std::chrono::milliseconds took{0};
  std::string detail;  // what was seen (never a secret)
  std::string fix;     // a failed step or a warning: what to change, in one line
  // A failed step's error: its class decides the exit code.
  std::optional<Error> error;
};

// Every step of a site's diagnosis, in the order they ran.
struct Diagnosis {
  std::string site;
  std::vector<DiagnosisStep> steps;

  const DiagnosisStep* firstFailure() const;
  // 0 when a pull would succeed, else the exit code of the first failed step's error class.
  int exitCode() const;
  // {"site", "healthy", "steps": [{id, container, result, seconds, detail, fix}]}
  nlohmann::json toJson() const;
  // diagnosisText(toJson()).
  std::string toText() const;
};

// The diagnosis of a site that could not be walked at all: its one failed step, site.config
// (the config does not read, or the diagnosis could not run).
Diagnosis configFailure(const std::string& site, const Error& error, std::string fix);

// A report (Diagnosis::toJson(), here or from the service) for people: one line a step, the
// fix under a failed one, then the first failure.
std::string diagnosisText(const nlohmann::json& report);

}  // namespace pullagent::agent
