#include "agent/cli/verify_command.h"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "agent/cli/registry_options.h"
#include "agent/common/exit_codes.h"
#include "base/random.h"
#include "puller/http/curl_http_client.h"
#include "puller/pipeline/pull_pipeline.h"
#include "resolver/system_resolver.h"

namespace pullagent::agent {
namespace {

constexpr const char* kVerifyUsage =
    R"(usage: pullagent verify IMAGE (--signature-policy FILE | --notation-dir DIR |
                        --verifier-dir DIR) [options]

Takes the signature policies' verdict on IMAGE as a pull takes it, and stops there: resolves
the tag (and an index's manifest for the platform), finds and checks the signatures, and
fetches no config or layer, publishes nothing. Exit 0 when the policies accept the image, 6
when they refuse it (and only then), the codes of pull otherwise (1 where pull gives 6).

where:
  --signature-policy FILE a containers-policy.json(5): cosign signatures by the keys it names
  --notation-dir DIR      a Notation configuration directory (trustpolicy.json and
                          truststore/x509/…, as ~/.config/notation): Notary Project signatures
  --verifier-dir DIR      containerd's image verifiers: every file of DIR (executables) must allow it

options:
  --json                  the verdict as one JSON object on stdout: image, manifest, index,
                          platform, result (accepted, refused or error), policy, scope, summary,
                          logged (checks the level only logged), check (what refused), error
  --creds USER:PASS       registry credentials (Basic, or for the token server)
  --username USER --password-stdin
                          the same, with the password read from standard input
  --ca FILE               PEM CA trusted in addition to the system CAs
  --hosts-dir DIR         mirrors, as containerd reads them: DIR/<registry>/hosts.toml
  --allow-skip-verify     accept skip_verify = true in a hosts.toml
  --platform OS/ARCH[/V]  platform to select from an index (default linux/amd64)
  --insecure              plain HTTP (only for a registry without TLS)
  --connect-timeout S     per-connection connect timeout (default 15)
  --stall-timeout S       abandon a transfer averaging under 8 KiB/s over S seconds (default 30)
  --retries N             attempts without progress before giving up (default 6)
  --deadline S            give up after S seconds (default none)
  --log-level LEVEL       trace, debug, info (default), warn, error
  --log-format FORMAT     text (default), journal or json
)";

const std::set<std::string> kVerifyOptions{
    "signature-policy", "notation-dir", "verifier-dir",    "creds",         "username", "ca",
    "hosts-dir",        "platform",     "connect-timeout", "stall-timeout", "retries",  "deadline"};

// Where the signatures' payloads go while they are checked: a layout of this run's own,
// removed after.
class ScratchLayout {
 public:
  ScratchLayout() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "pullagent-verify-XXXXXX").string();
    if (::mkdtemp(pattern.data()) != nullptr)
      path_ = pattern;
  }
  ~ScratchLayout() {
    std::error_code ignored;
    if (!path_.empty())
      std::filesystem::remove_all(path_, ignored);
  }
  ScratchLayout(const ScratchLayout&) = delete;
  ScratchLayout& operator=(const ScratchLayout&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

int runVerify(const ParsedArgs& args, const ProcessEnvironment& env, const Environment&) {
  nlohmann::json report = {{"image", args.positionals[0]}};
  const bool json = args.flag("json");
  auto finish = [&](const Error& error, const std::string& result) {
    report["result"] = result;
    report["error"] = error.describe();
    if (json)
      std::cout << report.dump(2) << "\n";
    spdlog::error("verify: {}", error.describe());
    // 6 says "refused" and nothing else; an error that pull would give 6 (a corrupt answer)
    // is a failure here.
    const int code = exitCodeFor(error);
    if (result == "refused")
      return static_cast<int>(kExitIntegrity);
    return code == kExitIntegrity ? static_cast<int>(kExitFailure) : code;
  };
  auto ref = puller::ImageRef::parse(args.positionals[0]);
  if (!ref)
    return finish(ref.error(), "error");
  puller::PullRequest job;
  job.ref = ref.value();
  if (auto text = args.option("platform")) {
    auto platform = puller::Platform::parse(*text);
    if (!platform)
      return finish(platform.error(), "error");
    job.options.platform = platform.value();
  }
  report["platform"] = job.options.platform.str();
  auto retries = parsePositive(args, "retries", 6);
  auto deadline = parsePositive(args, "deadline", 0);
  for (const auto* value : {&retries, &deadline}) {
    if (!*value)
      return finish(value->error(), "error");
  }
  auto credentials = credentialsFrom(args);
  if (!credentials)
    return finish(credentials.error(), "error");
  auto trust = trustPolicyFrom(args);
  if (!trust)
    return finish(trust.error(), "error");
  job.signature_policy = std::move(trust).value();
  report["policy"] = job.signature_policy->document();
  job.credentials = credentials.value();
  job.insecure = args.flag("insecure");
  job.retries = retries.value();
  if (args.option("deadline"))
    job.deadline = std::chrono::seconds(deadline.value());
  if (auto hosts = args.option("hosts-dir"))
    job.hosts_dir = std::filesystem::path(*hosts);
  job.allow_skip_verify = args.flag("allow-skip-verify");
  ScratchLayout scratch;
  if (scratch.path().empty())
    return finish(
        makeError(ErrorCode::kInternal,
                  "no scratch directory under " + std::filesystem::temp_directory_path().string()),
        "error");
  job.layout = scratch.path();
  job.verify_only = true;
  bool refused = false;
  std::string check;
  job.refused_by_signature_policy = &refused;
  job.refusing_check = &check;
  job.stop = env.stop;

  SystemClock clock;
  SystemRandom random;
  resolver::SystemResolver resolver;
  auto http_options = httpOptionsFrom(args, resolver);
  if (!http_options)
    return finish(http_options.error(), "error");
  auto http = puller::CurlHttpClient::create(*http_options);
  if (!http)
    return finish(http.error(), "error");
  job.http_options = *http_options;
  puller::PullServices own(**http, clock, random);
  auto outcome = puller::runPull(job, own);
  if (!outcome) {
    if (refused)
      report["check"] = check;
    return finish(outcome.error(), refused ? "refused" : "error");
  }
  const auto& image = outcome->image;
  report["manifest"] = image.manifest.digest.str();
  if (image.index)
    report["index"] = image.index->digest.str();
  report["result"] = "accepted";
  if (outcome->verdict) {
    report["scope"] = outcome->verdict->scope;
    report["summary"] = outcome->verdict->summary;
    report["logged"] = outcome->verdict->logged_checks;
  }
  if (json) {
    std::cout << report.dump(2) << "\n";
  } else {
    std::cout << "verified: " << job.ref.str() << "\n"
              << "  manifest:  " << image.manifest.digest.str() << "\n";
    if (image.index)
      std::cout << "  index:     " << image.index->digest.str() << "\n";
    std::cout << "  accepted:  " << report.value("summary", std::string()) << "\n";
    if (outcome->verdict && !outcome->verdict->logged_checks.empty()) {
      std::cout << "  logged:   ";
      for (const auto& logged : outcome->verdict->logged_checks)
        std::cout << " " << logged;
      std::cout << " (see the log)\n";
    }
  }
  return kExitOk;
}

}  // namespace

const Command& verifyCommand() {
  static const Command command{"verify",
                               "IMAGE (--signature-policy FILE | --notation-dir DIR | "
                               "--verifier-dir DIR)",
                               "the signature policies' verdict on an image, without pulling it",
                               kVerifyUsage,
                               kVerifyOptions,
                               {"json", "insecure", "password-stdin", "allow-skip-verify"},
                               1,
                               1,
                               {"signature-policy", "notation-dir", "verifier-dir"},
                               // Stops as a pull does: its verifiers are killed and its
                               // scratch directory removed.
                               false,
                               runVerify};
  return command;
}

}  // namespace pullagent::agent
