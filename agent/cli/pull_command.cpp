#include "agent/cli/pull_command.h"

#include <spdlog/spdlog.h>

#include <charconv>
#include <cstdio>
#include <iostream>

#include "agent/cli/args.h"
#include "agent/cli/exit_codes.h"
#include "agent/cli/progress.h"
#include "base/log.h"
#include "base/random.h"
#include "puller/http/curl_http_client.h"
#include "puller/image_puller.h"
#include "puller/store/oci_layout.h"
#include "puller/store/state_lock.h"
#include "puller/unpack/image_publisher.h"
#include "resolver/system_resolver.h"

namespace pullagent::agent {
namespace {

constexpr const char* kUsage =
    R"(usage: pullagent pull IMAGE (--dest DIR | --rootfs DIR | --bundle DIR | --state DIR)
                      [options]

Pulls IMAGE (blobs verified, resumable) and, unless only --dest is given, unpacks it and
publishes the result atomically.

where:
  --dest DIR              only pull: write the OCI image layout DIR (created if missing)
  --rootfs DIR            publish the image's root filesystem at DIR
  --bundle DIR            publish an OCI runtime bundle (config.json + rootfs/) at DIR
  --state DIR             content store and published images (default /var/lib/pullagent);
                          alone, publishes the bundle at DIR/images/<manifest digest>

options:
  --creds USER:PASS       registry credentials (Basic, or for the token server)
  --username USER --password-stdin
                          the same, with the password read from standard input
  --ca FILE               PEM CA trusted in addition to the system CAs
  --platform OS/ARCH[/V]  platform to select from an index (default linux/amd64)
  --insecure              plain HTTP (only for a registry without TLS)
  --concurrency N         blobs downloaded at once (default 4)
  --connect-timeout S     per-connection connect timeout (default 15)
  --stall-timeout S       abandon a transfer after S seconds without data (default 30)
  --retries N             attempts without progress before giving up (default 6)
  --deadline S            give up the whole pull after S seconds (default none)
  --log-level LEVEL       trace, debug, info (default), warn, error
)";

Result<int> parsePositive(const ParsedArgs& args, const std::string& name, int fallback) {
  auto text = args.option(name);
  if (!text)
    return fallback;
  int value = 0;
  auto [ptr, ec] = std::from_chars(text->data(), text->data() + text->size(), value);
  if (ec != std::errc() || ptr != text->data() + text->size() || value <= 0) {
    return makeError(ErrorCode::kInvalidArgument,
                     "--" + name + " needs a positive whole number, got \"" + *text + "\"");
  }
  return value;
}

Result<puller::RegistryCredentials> credentialsFrom(const ParsedArgs& args) {
  puller::RegistryCredentials credentials;
  if (auto creds = args.option("creds")) {
    auto colon = creds->find(':');
    if (colon == std::string::npos || colon == 0) {
      return makeError(ErrorCode::kInvalidArgument, "--creds needs USER:PASS");
    }
    credentials.username = creds->substr(0, colon);
    credentials.password = Secret(creds->substr(colon + 1));
  }
  if (args.flag("password-stdin")) {
    auto user = args.option("username");
    if (!user)
      return makeError(ErrorCode::kInvalidArgument, "--password-stdin needs --username");
    std::string password;
    std::getline(std::cin, password);
    credentials.username = *user;
    credentials.password = Secret(password);
  }
  return credentials;
}

int fail(const Error& error) {
  spdlog::error("pull failed: {}", error.describe());
  return exitCodeFor(error);
}

}  // namespace

int runPullCommand(const std::vector<std::string>& argv, const ProcessEnvironment& env) {
  auto parsed = parseArgs(
      argv,
      {"dest", "rootfs", "bundle", "state", "creds", "username", "ca", "platform", "concurrency",
       "connect-timeout", "stall-timeout", "retries", "deadline", "log-level"},
      {"insecure", "password-stdin", "help"});
  const bool has_target = parsed && (parsed->option("dest") || parsed->option("rootfs") ||
                                     parsed->option("bundle") || parsed->option("state"));
  if (!parsed || parsed->flag("help") || parsed->positionals.size() != 1 || !has_target) {
    if (!parsed)
      std::cerr << "pullagent pull: " << parsed.error().message << "\n";
    std::cerr << kUsage;
    return parsed && parsed->flag("help") ? kExitOk : kExitUsage;
  }
  const ParsedArgs& args = parsed.value();
  auto level = spdlog::level::from_str(args.option("log-level").value_or("info"));
  initLogging(LogFormat::kText, level);

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
  auto connect_timeout = parsePositive(args, "connect-timeout", 15);
  auto stall_timeout = parsePositive(args, "stall-timeout", 30);
  auto retries = parsePositive(args, "retries", 6);
  auto deadline = parsePositive(args, "deadline", 0);
  for (const auto* value : {&concurrency, &connect_timeout, &stall_timeout, &retries, &deadline}) {
    if (!*value)
      return fail(value->error());
  }
  options.concurrency = concurrency.value();
  auto credentials = credentialsFrom(args);
  if (!credentials)
    return fail(credentials.error());

  SystemClock clock;
  SystemRandom random;
  resolver::SystemResolver resolver;
  puller::HttpClientOptions http_options;
  http_options.resolver = &resolver;
  http_options.extra_ca_file = args.option("ca");
  http_options.connect_timeout = std::chrono::seconds(connect_timeout.value());
  http_options.stall_timeout = std::chrono::seconds(stall_timeout.value());
  auto http = puller::CurlHttpClient::create(http_options);
  if (!http)
    return fail(http.error());

  // --dest alone: the OCI layout is the store. Otherwise the store lives in the state dir.
  const bool layout_only = args.option("dest") && !args.option("rootfs") &&
                           !args.option("bundle") && !args.option("state");
  const std::filesystem::path state = args.option("state").value_or("/var/lib/pullagent");
  const std::filesystem::path store_root =
      args.option("dest") ? std::filesystem::path(*args.option("dest")) : state / "content";
  // Pulls into the state dir hold its lock shared: gc never collects what they fetch.
  std::optional<puller::StateLock> state_lock;
  if (!layout_only) {
    auto lock = puller::StateLock::acquire(state, puller::StateLock::Mode::kShared);
    if (!lock)
      return fail(lock.error());
    state_lock.emplace(std::move(lock.value()));
  }
  auto store = puller::ContentStore::open(store_root);
  if (!store)
    return fail(store.error());

  puller::TokenCache tokens(clock);
  const bool insecure = args.flag("insecure");
  puller::Authorizer authorizer(**http, clock, tokens, credentials.value(), insecure);
  puller::RetryPolicy policy;
  policy.max_attempts = retries.value();
  puller::RegistryClient registry(**http, authorizer, clock, random, policy,
                                  {insecure ? "http" : "https", ref->apiHost(), ref->repository});
  PullProgress progress(clock, env.stderr_is_terminal);

  // The pull stops on SIGTERM/SIGINT, or when the unpack running beside it fails.
  std::stop_source pull_stop;
  std::stop_callback forward_signal(env.stop, [&] { pull_stop.request_stop(); });
  std::optional<puller::ImagePublisher> publisher;
  if (!layout_only) {
    puller::ApplyOptions apply;
    apply.privileged = env.privileged;
    auto form = args.option("rootfs") ? puller::PublishForm::kRootfs : puller::PublishForm::kBundle;
    auto fixed = args.option("rootfs") ? args.option("rootfs") : args.option("bundle");
    publisher.emplace(
        **store,
        [fixed, state](const puller::PulledImage& image) {
          return fixed ? std::filesystem::path(*fixed)
                       : state / "images" / image.manifest.digest.hex();
        },
        form, apply, pull_stop, /*reuse_existing=*/!fixed);
  }
  puller::ObserverList observers(publisher
                                     ? std::vector<puller::PullObserver*>{&progress, &*publisher}
                                     : std::vector<puller::PullObserver*>{&progress});
  puller::ImagePuller image_puller(registry, **store, &observers);

  Context ctx{&clock, pull_stop.get_token(), std::nullopt};
  if (args.option("deadline"))
    ctx.deadline = clock.now() + std::chrono::seconds(deadline.value());
  spdlog::info("Pulling image {}", ref->str());
  const auto started = clock.now();
  auto image = image_puller.pull(ref.value(), options, ctx);
  progress.finish();
  if (publisher) {
    Status pull_status = image ? Status{} : Status{image.error()};
    if (auto status = publisher->finish(image ? &image.value() : nullptr, pull_status); !status)
      return fail(status.error());
  } else if (!image) {
    return fail(image.error());
  }

  const std::string ref_name = ref->tag ? *ref->tag : image->manifest.digest.str();
  if (auto status =
          puller::recordInOciLayout((*store)->root(), image->manifest, ref_name, ref->str());
      !status) {
    return fail(status.error());
  }
  std::string published = "OCI layout " + store_root.string() + " (ref name " + ref_name + ")";
  if (publisher) {
    published = (args.option("rootfs") ? "rootfs " : "bundle ") + publisher->target().string() +
                (publisher->reused() ? " (already published)" : "");
  }
  auto seconds = std::chrono::duration<double>(clock.now() - started).count();
  spdlog::info("Pull image successful, time taken {:.2f} s", seconds);
  std::printf(
      "pulled %s\n  digest:     %s\n  media type: %s\n  layers:     %zu\n  blobs:      %d "
      "downloaded, %d already present\n  downloaded: %s (%lld bytes transferred)\n  time:       "
      "%.2f s\n  published:  %s\n",
      ref->str().c_str(), image->manifest.digest.str().c_str(), image->manifest.media_type.c_str(),
      image->layers.size(), image->blobs_downloaded, image->blobs_present,
      humanBytes(image->bytes_downloaded).c_str(),
      static_cast<long long>(progress.bytesTransferred()), seconds, published.c_str());
  return kExitOk;
}

}  // namespace pullagent::agent
