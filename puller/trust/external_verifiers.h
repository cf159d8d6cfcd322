#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>

#include "base/context.h"
#include "base/error.h"
#include "puller/oci/manifest.h"

namespace pullagent::puller {

// containerd's image verifier plugins (io.containerd.image-verifier.v1.bindir), so that the
// verifiers written for containerd plug in unchanged: every executable in `bin_dir` (sorted by
// name, the first `max_verifiers`; fewer than 0: all) is run as
//   <bin> -name <image reference> -digest <resolved digest>
//         -stdin-media-type application/vnd.oci.descriptor.v1+json
// with the resolved descriptor (the index a tag names, else the manifest) as JSON on stdin;
// each must exit 0 within `per_verifier_timeout`, and what it prints on stdout is the reason.
// A directory that does not exist or holds no file blocks nothing, as in containerd; it is read
// at every verification, and kept verdicts are keyed by verifierFingerprint (a verifier added
// or replaced decides the next refresh of an unmoved tag).
//
// The agent runs as root: the directory and every verifier must belong to root (or to the
// agent's user) and be writable by no one else, or the image is refused saying so. A verifier
// gets an environment of PATH and LANG only (the agent's may hold credentials), runs in a
// process group of its own that is killed at its deadline, and its output is bounded and
// escaped before it reaches a log line or an error.
struct ExternalVerifierConfig {
  std::filesystem::path bin_dir;
  int max_verifiers = 10;
  std::chrono::seconds per_verifier_timeout{10};
};

inline constexpr std::string_view kDescriptorMediaType = "application/vnd.oci.descriptor.v1+json";

// What the directory holds now (names, sizes, times, inodes, modes, owners), as a digest: a
// verdict taken under one fingerprint is not reused under another (a verifier added, replaced
// or removed decides the next refresh).
std::string verifierFingerprint(const ExternalVerifierConfig& config);

// Every verifier's judgement on the image `name` resolved to `subject`: the reasons they gave
// when all allowed it; kUntrusted (and *refused) when one blocked it, naming it, its exit code
// and its reason; another error when one could not be run or ran out of time (no verdict).
Result<std::string> runExternalVerifiers(const ExternalVerifierConfig& config,
                                         const std::string& name, const Descriptor& subject,
                                         const Context& ctx, bool* refused);

}  // namespace pullagent::puller
