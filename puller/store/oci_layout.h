#pragma once

#include <filesystem>
#include <string>

#include "base/error.h"
#include "puller/oci/manifest.h"

namespace pullagent::puller {

// Makes a content store's root a valid OCI image layout: writes `oci-layout` and records the
// manifest in `index.json` under the `org.opencontainers.image.ref.name` annotation (so that
// `umoci unpack --image DIR:NAME` and `skopeo copy oci:DIR:NAME` find it). An entry with the
// same name is replaced, others are kept. Both files are written atomically.
Status recordInOciLayout(const std::filesystem::path& root, const Descriptor& manifest,
                         const std::string& ref_name, const std::string& full_name);

}  // namespace pullagent::puller
