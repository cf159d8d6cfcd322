#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "base/context.h"
#include "base/error.h"
#include "puller/oci/manifest.h"
#include "puller/store/content_store.h"

namespace pullagent::puller {

// A read-only image store the host provides (the agent config's additionalStores, as
// containers-storage's additionalimagestores or a secondary boot disk): a state dir or an OCI
// image layout written by pullagent (or any OCI tool), mounted read-only, consulted before the
// network for the registries it is configured for, and for no other (a store is the host's word
// for those registries' bytes; for any other it proves nothing).
struct AdditionalStore {
  std::filesystem::path root;
  std::vector<std::string> registries;  // registry hosts ("myreg.azurecr.io", "reg:5000")

  bool serves(const std::string& registry) const;
};

// Copies `blob` from `from` into `store`, verifying its size and digest as every download is
// (the store's bytes are used only once they hash to the digest); `verified` runs as for
// Ingest::commit. Returns false when the store has no such blob (missing, not a regular file, a
// link, another size) or another pull stored it meanwhile, an error when its bytes are not the
// blob's (a flipped byte: the caller fetches it from the registry instead). Never writes to the
// store.
Result<bool> copyFromStore(const AdditionalStore& from, const Descriptor& blob, ContentStore& store,
                           const Context& ctx, const std::function<void()>& verified);

}  // namespace pullagent::puller
