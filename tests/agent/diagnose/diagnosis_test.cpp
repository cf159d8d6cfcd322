// The diagnosis report (its exit code, JSON and text), the judgement of a DNS answer, the
// registry token's granted scope, and the step list against docs/diagnose.md.
#include "agent/diagnose/diagnosis.h"

#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <sstream>

#include "agent/diagnose/dns_judgement.h"
#include "base/base64.h"
#include "puller/auth/jwt.h"

namespace pullagent::agent {
namespace {

DiagnosisStep stepOf(std::string id, StepResult result, std::optional<Error> error = {}) {
  DiagnosisStep step;
  step.id = std::move(id);
  step.result = result;
  step.error = std::move(error);
  if (error)
    step.fix = "do something";
  return step;
}

TEST(Diagnosis, TheFirstFailedStepDecidesTheExitCode) {
  Diagnosis diagnosis;
  diagnosis.steps.push_back(stepOf("site.config", StepResult::kOk));
  EXPECT_EQ(diagnosis.exitCode(), 0);
  EXPECT_EQ(diagnosis.firstFailure(), nullptr);
  diagnosis.steps.push_back(stepOf("identity.token", StepResult::kFailed,
                                   makeError(ErrorCode::kUnauthenticated, "not assigned")));
  diagnosis.steps.push_back(
      stepOf("registry.manifest", StepResult::kFailed, makeError(ErrorCode::kNotFound, "no tag")));
  EXPECT_EQ(diagnosis.exitCode(), 3);
  EXPECT_EQ(diagnosis.firstFailure()->id, "identity.token");
  diagnosis.steps.erase(diagnosis.steps.begin() + 1);
  EXPECT_EQ(diagnosis.exitCode(), 4);
}

TEST(Diagnosis, JsonHasEveryStepWithItsFields) {
  Diagnosis diagnosis;
  diagnosis.site = "web";
  diagnosis.steps.push_back(stepOf("site.config", StepResult::kOk));
  auto failed = stepOf("dns.registry", StepResult::kFailed, makeError(ErrorCode::kNotFound, "x"));
  failed.container = "main";
  failed.took = std::chrono::milliseconds(1500);
  failed.fix = "link the private DNS zone";
  diagnosis.steps.push_back(failed);
  diagnosis.steps.push_back(stepOf("tcp.registry", StepResult::kSkipped));
  const auto report = diagnosis.toJson();
  EXPECT_EQ(report["site"], "web");
  EXPECT_FALSE(report["healthy"]);
  EXPECT_EQ(report["first_failure"], "dns.registry");
  EXPECT_EQ(report["exit_code"], 4);
  ASSERT_EQ(report["steps"].size(), 3u);
  EXPECT_EQ(report["steps"][1]["container"], "main");
  EXPECT_EQ(report["steps"][1]["result"], "failed");
  EXPECT_DOUBLE_EQ(report["steps"][1]["seconds"].get<double>(), 1.5);
  EXPECT_EQ(report["steps"][1]["fix"], "link the private DNS zone");
  EXPECT_TRUE(report["steps"][0]["fix"].is_null());
  EXPECT_EQ(report["steps"][2]["result"], "skipped");
  const std::string text = diagnosis.toText();
  EXPECT_NE(text.find("fix: link the private DNS zone"), std::string::npos) << text;
  EXPECT_NE(text.find("first failure: dns.registry (main)"), std::string::npos) << text;
}

TEST(Diagnosis, AReportOfOddShapeIsPrintedWithoutThrowing) {
  // The service's answer is parsed JSON: fields of another type are passed over, not trusted.
  for (const char* text :
       {R"([])", R"("x")", R"({"steps": 5})", R"({"steps": [1, "a", {"id": 7, "seconds": "x"}]})",
        R"({"steps": [{"id": "dns.registry", "result": "failed", "fix": ["x"]}],
            "first_failure": 3})"}) {
    EXPECT_NO_THROW(diagnosisText(nlohmann::json::parse(text))) << text;
  }
  const std::string text = diagnosisText(nlohmann::json::parse(
      R"({"steps": [{"id": "tcp.registry", "container": "main", "result": "failed",
          "seconds": 1.5, "detail": "refused", "fix": "open it"}],
          "first_failure": "tcp.registry"})"));
  EXPECT_NE(text.find("fix: open it"), std::string::npos) << text;
  EXPECT_NE(text.find("first failure: tcp.registry (main)"), std::string::npos) << text;
}

TEST(Diagnosis, APrivateLinkNameWithAPublicAddressIsAnUnlinkedZone) {
  auto judged =
      judgeDnsAnswer({"myreg.privatelink.azurecr.io", "westus.fe.azcr.io"}, {"20.45.122.144"});
  EXPECT_TRUE(judged.zone_not_linked);
  EXPECT_EQ(judged.zone, "privatelink.azurecr.io");
  // Linked: the private zone answers with the private endpoint's address.
  EXPECT_FALSE(judgeDnsAnswer({"myreg.privatelink.azurecr.io"}, {"10.0.1.5"}).zone_not_linked);
  // No private endpoint at all: a public registry is reached publicly, and that is fine.
  EXPECT_FALSE(judgeDnsAnswer({"westus.fe.azcr.io"}, {"20.45.122.144"}).zone_not_linked);
  EXPECT_FALSE(judgeDnsAnswer({}, {"20.45.122.144"}).zone_not_linked);
  // A name that only contains the word is not a private-link zone.
  EXPECT_FALSE(judgeDnsAnswer({"notprivatelink.example.com"}, {"20.45.122.144"}).zone_not_linked);
  auto data = judgeDnsAnswer({"myreg.westus.data.privatelink.azurecr.io."}, {"52.1.2.3"});
  EXPECT_TRUE(data.zone_not_linked);
  EXPECT_EQ(data.zone, "privatelink.azurecr.io");
}

// base64url without padding, as JWTs carry their parts.
std::string urlBase64(std::string_view bytes) {
  std::string text = encodeBase64(bytes);
  for (char& c : text)
    c = c == '+' ? '-' : c == '/' ? '_' : c;
  while (!text.empty() && text.back() == '=')
    text.pop_back();
  return text;
}

std::string token(const std::string& payload) {
  return urlBase64(R"({"alg":"RS256"})") + "." + urlBase64(payload) + ".c2ln";
}

TEST(Diagnosis, TheRegistryTokensAccessClaimIsRead) {
  auto claims = puller::readJwtClaims(
      token(R"({"access":[{"type":"repository","name":"privatewebsite","actions":["pull","push"]},)"
            R"({"type":"registry","name":"catalog","actions":["*"]},{"type":5}]})"));
  ASSERT_TRUE(claims.ok()) << claims.error().describe();
  ASSERT_TRUE(claims->access);
  EXPECT_EQ(*claims->access, (std::vector<std::string>{"repository:privatewebsite:pull,push",
                                                       "registry:catalog:*"}));
  auto empty = puller::readJwtClaims(token(R"({"access":[]})"));
  ASSERT_TRUE(empty.ok());
  ASSERT_TRUE(empty->access);
  EXPECT_TRUE(empty->access->empty());
  auto none = puller::readJwtClaims(token(R"({"exp":1})"));
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->access);
}

TEST(Diagnosis, EveryStepIsDocumentedOnceInItsOrder) {
  std::ifstream in(std::string(PULLAGENT_SOURCE_DIR) + "/docs/diagnose.md");
  ASSERT_TRUE(in) << "cannot read docs/diagnose.md";
  std::stringstream text;
  text << in.rdbuf();
  const std::string doc = text.str();
  std::set<std::string_view> seen;
  size_t previous = 0;
  for (const auto& step : stepCatalog()) {
    EXPECT_TRUE(seen.insert(step.id).second) << step.id << " twice in the catalogue";
    const auto at = doc.find("| `" + std::string(step.id) + "` |");
    ASSERT_NE(at, std::string::npos) << step.id << " is not in docs/diagnose.md's table";
    EXPECT_GT(at, previous) << step.id << " is out of order in docs/diagnose.md";
    previous = at;
  }
}

}  // namespace
}  // namespace pullagent::agent
