#include "puller/unpack/image_publisher.h"

#include <sys/stat.h>

#include <cerrno>

#include "base/atomic_file.h"
#include "puller/unpack/image_unpacker.h"
#include "puller/unpack/runtime_spec.h"
#include "puller/unpack/staging.h"

namespace pullagent::puller {

Status publishImage(const ContentStore& store, const PulledImage& image,
                    const std::filesystem::path& target, PublishForm form,
                    const ApplyOptions& options, const Context& ctx) {
  removeStaleStaging(target);
  auto staging = Staging::create(target, form == PublishForm::kBundle ? 0700 : 0755);
  if (!staging)
    return staging.error();
  std::filesystem::path rootfs = staging->dir();
  if (form == PublishForm::kBundle) {
    rootfs /= "rootfs";
    if (::mkdir(rootfs.c_str(), 0755) != 0)
      return errnoError(errno, "create", rootfs);
  }
  if (auto status = unpackImage(store, image, rootfs, options, ctx); !status)
    return status;

  if (form == PublishForm::kBundle) {
    auto config = store.readBlob(image.config.digest, kMaxConfigSize);
    if (!config)
      return config.error();
    auto manifest = store.readBlob(image.manifest.digest, kMaxManifestSize);
    if (!manifest)
      return manifest.error();
    auto root = ConfinedRoot::open(rootfs);
    if (!root)
      return root.error();
    auto spec = makeRuntimeSpec(config.value(), root.value());
    if (!spec)
      return spec.error();
    for (auto [name, content] :
         {std::pair{"config.json", &spec.value()}, std::pair{"image-config.json", &config.value()},
          std::pair{"manifest.json", &manifest.value()}}) {
      if (auto status = writeFileAtomic(staging->dir() / name, *content); !status)
        return status;
    }
  }
  if (auto status = ctx.check(); !status)
    return status;
  return staging->publish();
}

}  // namespace pullagent::puller
