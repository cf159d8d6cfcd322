#pragma once

#include <chrono>
#include <string>

#include "agent/diagnose/diagnosis.h"
#include "base/clock.h"
#include "base/error.h"

namespace pullagent::agent {

// Appends a diagnosis's steps, each timed from its begin().
class StepLog {
 public:
  StepLog(Diagnosis& diagnosis, const Clock& clock, std::string container)
      : diagnosis_(diagnosis), clock_(clock), container_(std::move(container)) {}

  void begin() { started_ = clock_.now(); }
  void ok(std::string id, std::string detail) {
    add(std::move(id), StepResult::kOk, std::move(detail), "", std::nullopt);
  }
  void failed(std::string id, const Error& error, std::string fix) {
    add(std::move(id), StepResult::kFailed, error.describe(), std::move(fix), error);
  }
  void warning(std::string id, std::string detail, std::string fix) {
    add(std::move(id), StepResult::kWarning, std::move(detail), std::move(fix), std::nullopt);
  }
  void skipped(std::string id, std::string why) {
    add(std::move(id), StepResult::kSkipped, std::move(why), "", std::nullopt);
  }

 private:
  void add(std::string id, StepResult result, std::string detail, std::string fix,
           std::optional<Error> error) {
    DiagnosisStep step;
    step.id = std::move(id);
    step.container = container_;
    step.result = result;
    step.took = std::chrono::duration_cast<std::chrono::milliseconds>(clock_.now() - started_);
    step.detail = std::move(detail);
    step.fix = std::move(fix);
    step.error = std::move(error);
    diagnosis_.steps.push_back(std::move(step));
    started_ = clock_.now();
  }

  Diagnosis& diagnosis_;
  const Clock& clock_;
  std::string container_;
  std::chrono::steady_clock::time_point started_ = clock_.now();
};

}  // namespace pullagent::agent
