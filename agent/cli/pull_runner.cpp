#include "agent/cli/pull_runner.h"

#include <spdlog/spdlog.h>

#include <cstdio>

#include "agent/cli/progress.h"
#include "puller/store/oci_layout.h"
#include "puller/store/state_lock.h"

namespace pullagent::agent {

Result<PullOutcome> runPullJob(puller::HttpClient& http, Clock& clock, Random& random,
                               const PullJob& job, const ProcessEnvironment& env) {
  const bool layout_only = job.layout && !job.target;
  const std::filesystem::path store_root = job.layout ? *job.layout : job.state / "content";
  // Pulls into the state dir hold its lock shared: gc never collects what they fetch.
  std::optional<puller::StateLock> state_lock;
  if (!layout_only) {
    auto lock = puller::StateLock::acquire(job.state, puller::StateLock::Mode::kShared);
    if (!lock)
      return lock.error();
    state_lock.emplace(std::move(lock.value()));
  }
  std::unique_ptr<puller::ContentStore> own_store;
  puller::ContentStore* store = job.store;
  if (store == nullptr || job.layout) {
    auto opened = puller::ContentStore::open(store_root);
    if (!opened)
      return opened.error();
    own_store = std::move(opened.value());
    store = own_store.get();
  }

  puller::TokenCache tokens(clock);
  puller::Authorizer authorizer(http, clock, tokens, job.credentials, job.insecure);
  puller::RetryPolicy policy;
  policy.max_attempts = job.retries;
  puller::RegistryClient registry(
      http, authorizer, clock, random, policy,
      {job.insecure ? "http" : "https", job.ref.apiHost(), job.ref.repository});
  PullProgress progress(clock, env.stderr_is_terminal);

  // The pull stops on SIGTERM/SIGINT, or when the unpack running beside it fails.
  std::stop_source pull_stop;
  std::stop_callback forward_signal(env.stop, [&] { pull_stop.request_stop(); });
  std::optional<puller::ImagePublisher> publisher;
  if (!layout_only) {
    puller::ApplyOptions apply;
    apply.privileged = env.privileged;
    publisher.emplace(
        *store,
        [&job](const puller::PulledImage& image) {
          return job.target ? *job.target : job.state / "images" / image.manifest.digest.hex();
        },
        job.form, apply, pull_stop, /*reuse_existing=*/!job.target, job.runtime);
  }
  std::vector<puller::PullObserver*> watching{&progress};
  if (publisher)
    watching.push_back(&*publisher);
  if (job.observer != nullptr)
    watching.push_back(job.observer);
  puller::ObserverList observers(std::move(watching));
  puller::ImagePuller image_puller(registry, *store, &observers);

  Context ctx{&clock, pull_stop.get_token(), std::nullopt};
  if (job.deadline)
    ctx.deadline = clock.now() + *job.deadline;
  spdlog::info("Pulling image {}", job.ref.str());
  const auto started = clock.now();
  auto image = image_puller.pull(job.ref, job.options, ctx);
  progress.finish();
  if (publisher) {
    Status pull_status = image ? Status{} : Status{image.error()};
    if (auto status = publisher->finish(image ? &image.value() : nullptr, pull_status); !status)
      return status.error();
  } else if (!image) {
    return image.error();
  }

  const std::string ref_name = job.ref.tag ? *job.ref.tag : image->manifest.digest.str();
  if (auto status =
          puller::recordInOciLayout(store->root(), image->manifest, ref_name, job.ref.str());
      !status) {
    return status.error();
  }
  PullOutcome outcome;
  outcome.published = "OCI layout " + store_root.string() + " (ref name " + ref_name + ")";
  if (publisher) {
    outcome.published = (job.form == puller::PublishForm::kRootfs ? "rootfs " : "bundle ") +
                        publisher->target().string() +
                        (publisher->reused() ? " (already published)" : "");
  }
  outcome.seconds = std::chrono::duration<double>(clock.now() - started).count();
  outcome.transferred = progress.bytesTransferred();
  outcome.image = std::move(image.value());
  spdlog::info("Pull image successful, time taken {:.2f} s", outcome.seconds);
  return outcome;
}

void printOutcome(const PullJob& job, const PullOutcome& outcome) {
  const auto& image = outcome.image;
  std::printf(
      "pulled %s\n  digest:     %s\n  media type: %s\n  layers:     %zu\n  blobs:      %d "
      "downloaded, %d already present\n  downloaded: %s (%lld bytes transferred)\n  time:       "
      "%.2f s\n  published:  %s\n",
      job.ref.str().c_str(), image.manifest.digest.str().c_str(), image.manifest.media_type.c_str(),
      image.layers.size(), image.blobs_downloaded, image.blobs_present,
      humanBytes(image.bytes_downloaded).c_str(), static_cast<long long>(outcome.transferred),
      outcome.seconds, outcome.published.c_str());
}

}  // namespace pullagent::agent
