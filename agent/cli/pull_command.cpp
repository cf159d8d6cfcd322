#include "agent/cli/pull_command.h"

#include <spdlog/spdlog.h>

#include <charconv>
#include <iostream>
#include <set>

#include "agent/cli/pull_outcome.h"
#include "agent/cli/registry_options.h"
#include "agent/cli/state_dir_option.h"
#include "agent/common/args.h"
#include "agent/common/exit_codes.h"
#include "agent/common/log_options.h"
#include "agent/common/progress.h"
#include "agent/site/storage_choice.h"
#include "base/random.h"
#include "puller/http/curl_http_client.h"
#include "puller/pipeline/pull_pipeline.h"
#include "puller/trust/trust_policy.h"
#include "resolver/system_resolver.h"

namespace pullagent::agent {
namespace {

constexpr const char* kPullUsage =
    R"(usage: pullagent pull IMAGE (--dest DIR | --rootfs DIR | --bundle DIR | --state DIR |
                      --config FILE)
                      [options]

Pulls IMAGE (blobs verified, resumable) and, unless only --dest is given, unpacks it and
publishes the result atomically.

where:
  --dest DIR              only pull: write the OCI image layout DIR (created if missing);
                          with --rootfs or --bundle, the layout they publish from; not with
                          --state or --config alone
  --rootfs DIR            publish the image's root filesystem at DIR
  --bundle DIR            publish an OCI runtime bundle (config.json + rootfs/) at DIR; over
                          snapshots, rootfs/ is a mount point (pullagent mount DIR TARGET)
  --state DIR             content store and published images (default: the agent config's
                          stateDir, else /var/lib/pullagent); alone, publishes the bundle at
                          DIR/images/<manifest digest>
  --config FILE           agent config naming the state dir (default /etc/pullagent/agent.json);
                          alone, publishes there as --state does
  --storage MODE          how bundles (--bundle, or --state alone) keep root filesystems:
                          overlay (each layer unpacked once into the state dir's snapshots,
                          shared by every image), flat (a tree per image) or auto (default:
                          overlay where it works)

options:
  --creds USER:PASS       registry credentials (Basic, or for the token server)
  --username USER --password-stdin
                          the same, with the password read from standard input
  --ca FILE               PEM CA trusted in addition to the system CAs
  --hosts-dir DIR         mirrors, as containerd reads them: DIR/<registry>/hosts.toml
                          (and DIR/_default), e.g. /etc/containerd/certs.d
  --allow-skip-verify     accept skip_verify = true in a hosts.toml
  --platform OS/ARCH[/V]  platform to select from an index (default linux/amd64)
  --insecure              plain HTTP (only for a registry without TLS)
  --concurrency N         blobs downloaded at once (default 4)
  --range-concurrency N   connections for one large blob, each fetching a range of it
                          (default 4; 1: one stream per blob)
  --range-part-mib N      no range smaller than N MiB: blobs under twice that are one
                          stream (default 16)
  --connect-timeout S     per-connection connect timeout (default 15)
  --stall-timeout S       abandon (and resume) a transfer averaging under 8 KiB/s over S
                          seconds (default 30)
  --retries N             attempts without progress before giving up (default 6)
  --deadline S            give up the whole pull after S seconds (default none)
  --shared-blob-proof P   a blob the state dir holds from another repository of the same
                          registry is used once the registry answers a HEAD for it in this
                          repository (head, the default) or serves it again (fetch: strict, the
                          registry learns nothing of what else the host holds); blobs from
                          another registry are always fetched again
  --signature-policy FILE a containers-policy.json(5): the image is refused before its first
                          layer unless its scope's requirements hold (cosign signatures by the
                          keys it names, reject, insecureAcceptAnything)
  --notation-dir DIR      a Notation configuration directory (trustpolicy.json and
                          truststore/x509/…, as ~/.config/notation): the image is refused before
                          its first layer unless a Notary Project signature satisfies the
                          statement covering its repository; with --signature-policy, both
  --verifier-dir DIR      containerd's image verifiers (io.containerd.image-verifier.v1.bindir):
                          every file of DIR (executables) must allow the image, before its first
                          layer
  --seccomp-profile FILE  the seccomp profile (Docker's format) for a bundle's config.json,
                          or "none" (default /usr/share/containers/seccomp.json)
  --log-level LEVEL       trace, debug, info (default), warn, error
  --log-format FORMAT     text (default), journal or json
)";

// The options that take a value (--log-level and --log-format: every command's).
const std::set<std::string> kPullOptions{"dest",
                                         "rootfs",
                                         "bundle",
                                         "state",
                                         "config",
                                         "creds",
                                         "username",
                                         "ca",
                                         "platform",
                                         "concurrency",
                                         "retries",
                                         "connect-timeout",
                                         "stall-timeout",
                                         "deadline",
                                         "seccomp-profile",
                                         "signature-policy",
                                         "notation-dir",
                                         "verifier-dir",
                                         "storage",
                                         "shared-blob-proof",
                                         "hosts-dir",
                                         "range-concurrency",
                                         "range-part-mib"};

int fail(const Error& error) {
  spdlog::error("pull failed: {}", error.describe());
  return exitCodeFor(error);
}

}  // namespace

namespace {

int runPull(const ParsedArgs& args, const ProcessEnvironment& env, const Environment& environment) {
  auto ref = puller::ImageRef::parse(args.positionals[0]);
  if (!ref)
    return fail(ref.error());
  puller::PullOptions options;
  if (auto text = args.option("platform")) {
    auto platform = puller::Platform::parse(*text);
    if (!platform)
      return fail(platform.error());
    options.platform = platform.value();
  }
  auto concurrency = parsePositive(args, "concurrency", 4);
  auto retries = parsePositive(args, "retries", 6);
  auto deadline = parsePositive(args, "deadline", 0);
  auto range_concurrency = parsePositive(args, "range-concurrency", 4);
  auto range_part_mib = parsePositive(args, "range-part-mib", 16);
  for (const auto* value :
       {&concurrency, &retries, &deadline, &range_concurrency, &range_part_mib}) {
    if (!*value)
      return fail(value->error());
  }
  if (range_concurrency.value() > 16 || range_part_mib.value() > 1024) {
    return fail(makeError(ErrorCode::kInvalidArgument,
                          "--range-concurrency takes at most 16, --range-part-mib at most 1024"));
  }
  options.concurrency = concurrency.value();
  auto credentials = credentialsFrom(args);
  if (!credentials)
    return fail(credentials.error());

  puller::PullRequest job;
  job.ref = ref.value();
  job.options = options;
  job.credentials = credentials.value();
  job.insecure = args.flag("insecure");
  job.retries = retries.value();
  job.ranges.connections = range_concurrency.value();
  job.ranges.min_part = int64_t{range_part_mib.value()} << 20;
  if (args.option("deadline"))
    job.deadline = std::chrono::seconds(deadline.value());
  if (auto profile = args.option("seccomp-profile")) {
    job.runtime.seccomp_profile =
        *profile == "none" ? std::nullopt : std::optional<std::filesystem::path>(*profile);
  }
  // --dest alone only pulls into an OCI layout; --state or --config alone publish into a state
  // dir. Both at once would leave one of them unused: said, rather than silently ignored.
  const bool publishes = args.option("rootfs") || args.option("bundle");
  if (args.option("dest") && !publishes && (args.option("state") || args.option("config"))) {
    return usageError(pullCommand(),
                      "--dest only pulls into that OCI layout, --" +
                          std::string(args.option("state") ? "state" : "config") +
                          " publishes into a state dir: give one of them (or --rootfs/--bundle "
                          "to publish from the layout)");
  }
  const bool layout_only = args.option("dest") && !publishes;
  if (!layout_only) {
    auto state = chooseStateDir(args, environment);
    if (!state)
      return fail(state.error());
    job.state = state->dir;
  }
  if (args.option("dest"))
    job.layout = std::filesystem::path(*args.option("dest"));
  if (auto fixed = args.option("rootfs") ? args.option("rootfs") : args.option("bundle"))
    job.target = std::filesystem::path(*fixed);
  job.form = args.option("rootfs") ? puller::PublishForm::kRootfs : puller::PublishForm::kBundle;

  SystemClock clock;
  SystemRandom random;
  resolver::SystemResolver resolver;
  auto http_options = httpOptionsFrom(args, resolver);
  if (!http_options)
    return fail(http_options.error());
  auto http = puller::CurlHttpClient::create(*http_options);
  if (!http)
    return fail(http.error());
  job.http_options = *http_options;
  if (auto hosts = args.option("hosts-dir"))
    job.hosts_dir = std::filesystem::path(*hosts);
  job.allow_skip_verify = args.flag("allow-skip-verify");
  if (auto proof = args.option("shared-blob-proof")) {
    auto chosen = puller::parseSharedBlobProof(*proof);
    if (!chosen)
      return fail(chosen.error().context("--shared-blob-proof"));
    job.shared_blob_proof = chosen.value();
  }
  auto trust = trustPolicyFrom(args);
  if (!trust)
    return fail(trust.error());
  job.signature_policy = std::move(trust).value();
  job.stop = env.stop;
  job.privileged = env.privileged;
  if (!job.layout && job.form == puller::PublishForm::kBundle) {
    auto snapshots =
        chooseSnapshots(args.option("storage").value_or("auto"), job.state, env.privileged);
    if (!snapshots)
      return fail(snapshots.error());
    job.snapshots = snapshots.value();
  }
  PullProgress progress(clock, env.stderr_is_terminal);
  job.observers.push_back(&progress);
  puller::PullServices own(**http, clock, random);
  auto outcome = puller::runPull(job, own);
  if (!outcome)
    return fail(outcome.error());
  printOutcome(job.ref, outcome.value());
  return kExitOk;
}

}  // namespace

const Command& pullCommand() {
  static const Command command{"pull",
                               "IMAGE (--dest DIR | --rootfs DIR | --bundle DIR | --state DIR)",
                               "pull an image; unpack and publish it",
                               kPullUsage,
                               kPullOptions,
                               {"insecure", "password-stdin", "allow-skip-verify"},
                               1,
                               1,
                               {"dest", "rootfs", "bundle", "state", "config"},
                               false,
                               runPull};
  return command;
}

}  // namespace pullagent::agent
