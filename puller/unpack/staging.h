#pragma once

#include <filesystem>

#include "base/error.h"

namespace pullagent::puller {

// A directory built beside its final place and moved there in one atomic step: readers see
// the previous tree or the complete new one, never a half one. A staging directory that is not
// published is removed with this object; ones left by a crash are removed by
// removeStaleStaging() at the next start.
class Staging {
 public:
  // Creates "<parent>/.<name>.staging-<pid>-<n>" with `mode` (0700 for bundles: the published
  // top directory keeps host users away from setuid files inside).
  static Result<Staging> create(const std::filesystem::path& target, mode_t mode);
  ~Staging();
  Staging(Staging&& other) noexcept;
  Staging& operator=(Staging&&) = delete;
  Staging(const Staging&) = delete;

  const std::filesystem::path& dir() const { return dir_; }

  // Moves the staging directory to the target: a plain rename when the target does not exist,
  // else an atomic exchange (renameat2 RENAME_EXCHANGE) after which the old tree is removed.
  Status publish();

 private:
  Staging(std::filesystem::path dir, std::filesystem::path target)
      : dir_(std::move(dir)), target_(std::move(target)) {}
  std::filesystem::path dir_;
  std::filesystem::path target_;
  bool published_ = false;
};

// Removes the staging directories a crashed run left beside `target`.
void removeStaleStaging(const std::filesystem::path& target);

}  // namespace pullagent::puller
