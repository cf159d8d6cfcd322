#pragma once

#include <filesystem>

#include "base/context.h"
#include "puller/image_puller.h"
#include "puller/store/content_store.h"
#include "puller/unpack/layer_applier.h"

namespace pullagent::puller {

// Applies a pulled image's layers in order onto an empty directory, checking each layer's
// diff_id against the image config. The directory is a staging area: on any error its content
// is undefined and the caller discards it.
Status unpackImage(const ContentStore& store, const PulledImage& image,
                   const std::filesystem::path& rootfs, const ApplyOptions& options,
                   const Context& ctx);

}  // namespace pullagent::puller
