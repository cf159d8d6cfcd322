#pragma once

#include <filesystem>
#include <string>

namespace pullagent::testing {

// Where a file of a published image's root filesystem lies, without mounting it: in the
// top-most layer snapshot holding it (the image's rootfs-mounts.json lists them), or in rootfs/
// for an image published as a plain tree. Whiteouts are not followed: it is for reading the
// files an image has, not for telling that one is gone (mount the image for that).
std::filesystem::path imageFile(const std::filesystem::path& image_dir,
                                const std::string& relative);

}  // namespace pullagent::testing
