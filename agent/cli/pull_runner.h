#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "agent/cli/pull_command.h"
#include "base/clock.h"
#include "base/random.h"
#include "puller/auth/authorizer.h"
#include "puller/image_puller.h"
#include "puller/unpack/image_publisher.h"

namespace pullagent::agent {

// One pull as the command line and `--once --site` describe it.
struct PullJob {
  puller::ImageRef ref;
  puller::PullOptions options;
  puller::RegistryCredentials credentials;
  bool insecure = false;
  int retries = 6;
  std::optional<std::chrono::seconds> deadline;
  std::filesystem::path state = "/var/lib/pullagent";
  std::optional<std::filesystem::path> layout;  // only pull, into this OCI layout
  std::optional<std::filesystem::path> target;  // publish here; else state/images/<digest>
  puller::PublishForm form = puller::PublishForm::kBundle;
  puller::RuntimeOptions runtime;            // the bundle's config.json: the seccomp profile
  puller::PullObserver* observer = nullptr;  // sees the pull too (the daemon's site state)
  // The state dir's store when the caller keeps one open (the daemon: pulls of several sites
  // then wait for each other's blobs in-process instead of through the ingest file's flock).
  puller::ContentStore* store = nullptr;
};

struct PullOutcome {
  puller::PulledImage image;
  std::string published;  // what and where, for people
  double seconds = 0;
  int64_t transferred = 0;
};

// Pulls, and unless the job is layout-only unpacks and publishes while pulling, holding the
// state lock shared. Progress goes to stderr.
Result<PullOutcome> runPullJob(puller::HttpClient& http, Clock& clock, Random& random,
                               const PullJob& job, const ProcessEnvironment& env);

// The summary block on stdout.
void printOutcome(const PullJob& job, const PullOutcome& outcome);

}  // namespace pullagent::agent
