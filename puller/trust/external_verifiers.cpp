#include "puller/trust/external_verifiers.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "puller/oci/sha256.h"
#include "puller/trust/verifier_process.h"

namespace pullagent::puller {
namespace {

constexpr size_t kReasonText = 1024;

// Owned by root or by the agent's user, writable by no one else: what the agent runs as root
// must be the host's choice alone.
std::optional<std::string> unsafeOwnership(const std::filesystem::path& path,
                                           const struct stat& info) {
  if (info.st_uid != 0 && info.st_uid != ::geteuid())
    return path.string() + " belongs to uid " + std::to_string(info.st_uid) +
           ", not to root or the agent's user";
  if ((info.st_mode & (S_IWGRP | S_IWOTH)) != 0)
    return path.string() + " is writable by its group or by others";
  return std::nullopt;
}

std::string descriptorJson(const Descriptor& subject) {
  nlohmann::json descriptor = {
      {"mediaType", subject.media_type}, {"digest", subject.digest.str()}, {"size", subject.size}};
  if (!subject.annotations.empty())
    descriptor["annotations"] = subject.annotations;
  return descriptor.dump();
}

}  // namespace

std::string verifierFingerprint(const ExternalVerifierConfig& config) {
  std::string listing;
  auto add = [&](const std::filesystem::path& path) {
    struct stat info {};
    if (::lstat(path.c_str(), &info) != 0) {
      listing += path.filename().string() + " missing\n";
      return;
    }
    listing += path.filename().string() + " " + std::to_string(info.st_size) + " " +
               std::to_string(info.st_mtim.tv_sec) + "." + std::to_string(info.st_mtim.tv_nsec) +
               " " + std::to_string(info.st_ino) + " " + std::to_string(info.st_mode) + " " +
               std::to_string(info.st_uid) + "\n";
  };
  add(config.bin_dir);
  std::vector<std::filesystem::path> entries;
  std::error_code error;
  for (auto it = std::filesystem::directory_iterator(config.bin_dir, error);
       !error && it != std::filesystem::directory_iterator() && entries.size() <= 1000;
       it.increment(error))
    entries.push_back(it->path());
  std::sort(entries.begin(), entries.end());
  for (const auto& entry : entries)
    add(entry);
  return Sha256::of(listing).hex();
}

Result<std::string> runExternalVerifiers(const ExternalVerifierConfig& config,
                                         const std::string& name, const Descriptor& subject,
                                         const Context& ctx, bool* refused) {
  auto refuse = [&](const std::string& why) {
    if (refused != nullptr)
      *refused = true;
    return makeError(ErrorCode::kUntrusted,
                     "refused by the image verifiers in " + config.bin_dir.string() + ": " + why);
  };
  struct stat directory {};
  if (::lstat(config.bin_dir.c_str(), &directory) != 0) {
    if (errno == ENOENT)
      return std::string("no image verifiers (") + config.bin_dir.string() + " does not exist)";
    return makeError(ErrorCode::kInternal,
                     "image verifiers: " + config.bin_dir.string() + ": " + std::strerror(errno));
  }
  if (!S_ISDIR(directory.st_mode))
    return refuse(config.bin_dir.string() + " is not a directory");
  if (auto unsafe = unsafeOwnership(config.bin_dir, directory))
    return refuse(*unsafe);
  std::vector<std::filesystem::path> verifiers;
  std::error_code error;
  for (auto it = std::filesystem::directory_iterator(config.bin_dir, error);
       !error && it != std::filesystem::directory_iterator(); it.increment(error)) {
    verifiers.push_back(it->path());
    if (verifiers.size() > 1000)
      return refuse("more than 1000 entries");
  }
  if (error)
    return makeError(ErrorCode::kInternal,
                     "image verifiers: " + config.bin_dir.string() + ": " + error.message());
  std::sort(verifiers.begin(), verifiers.end());
  if (config.max_verifiers >= 0 && verifiers.size() > static_cast<size_t>(config.max_verifiers))
    verifiers.resize(static_cast<size_t>(config.max_verifiers));
  if (verifiers.empty())
    return std::string("no image verifiers (") + config.bin_dir.string() + " is empty)";

  const std::string input = descriptorJson(subject);
  const std::vector<std::string> arguments{"-name",
                                           name,
                                           "-digest",
                                           subject.digest.str(),
                                           "-stdin-media-type",
                                           std::string(kDescriptorMediaType)};
  std::string reasons;
  for (const auto& verifier : verifiers) {
    struct stat info {};
    if (::lstat(verifier.c_str(), &info) != 0 || !S_ISREG(info.st_mode))
      return refuse(verifier.string() + " is not a regular file (a symbolic link, a directory?)");
    if (auto unsafe = unsafeOwnership(verifier, info))
      return refuse(*unsafe);
    if ((info.st_mode & S_IXUSR) == 0)
      return refuse(verifier.string() +
                    " is not executable (every file of the directory is a "
                    "verifier)");
    const std::string bin = verifier.filename().string();
    auto run = runVerifierProcess(
        verifier, arguments, input,
        std::chrono::duration_cast<std::chrono::milliseconds>(config.per_verifier_timeout), ctx);
    if (!run)
      return run.error().context("image verifier " + bin);
    if (!run->err.empty())
      spdlog::debug("image verifier {} said on stderr: {}", bin,
                    escapedOutput(run->err, kReasonText));
    const std::string reason = escapedOutput(run->out, kReasonText);
    if (run->exit_code != 0)
      return refuse("verifier " + bin + " rejected " + name + " (exit code " +
                    std::to_string(run->exit_code) + "): " + reason);
    reasons += (reasons.empty() ? "" : ", ") + bin + " => " + reason;
  }
  return reasons;
}

}  // namespace pullagent::puller
