#pragma once

#include <filesystem>

#include "base/context.h"
#include "puller/image_puller.h"
#include "puller/store/content_store.h"
#include "puller/unpack/layer_applier.h"

namespace pullagent::puller {

enum class PublishForm {
  kRootfs,  // the target is the root filesystem itself
  kBundle,  // the target is an OCI runtime bundle: config.json, rootfs/, plus manifest.json and
            // image-config.json for reference; its top directory is 0700
};

// Unpacks a pulled image into a staging directory beside `target` and publishes it there
// atomically. A failure at any point leaves whatever was at `target` before untouched.
Status publishImage(const ContentStore& store, const PulledImage& image,
                    const std::filesystem::path& target, PublishForm form,
                    const ApplyOptions& options, const Context& ctx);

}  // namespace pullagent::puller
