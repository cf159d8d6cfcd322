#include "puller/unpack/image_unpacker.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>

namespace pullagent::puller {

Status unpackImage(const ContentStore& store, const PulledImage& image,
                   const std::filesystem::path& rootfs, const ApplyOptions& options,
                   const Context& ctx) {
  if (image.diff_ids.size() != image.layers.size()) {
    return makeError(ErrorCode::kProtocol, "diff_ids and layers differ in count");
  }
  auto root = ConfinedRoot::open(rootfs);
  if (!root)
    return root.error();
  for (size_t i = 0; i < image.layers.size(); ++i) {
    if (auto status = ctx.check(); !status)
      return status;
    const Descriptor& layer = image.layers[i];
    auto path = store.blobPath(layer.digest);
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) {
      return makeError(ErrorCode::kInternal,
                       "open layer " + layer.digest.str() + ": " + std::strerror(errno));
    }
    auto stream = openLayerStream(std::move(fd), layer.media_type, options.limits);
    if (!stream)
      return stream.error().context("layer " + std::to_string(i));
    auto applied = applyLayer(root.value(), **stream, options);
    if (!applied)
      return applied.error().context("layer " + std::to_string(i) + " (" + layer.digest.str() +
                                     ")");
    if (applied->diff_id != image.diff_ids[i]) {
      return makeError(ErrorCode::kDigestMismatch,
                       "layer " + std::to_string(i) + " (" + layer.digest.str() +
                           ") decompresses to " + applied->diff_id.str() +
                           ", the image config says " + image.diff_ids[i].str());
    }
    spdlog::info("layer {} applied: {} entries, {} bytes", layer.digest.str(), applied->entries,
                 applied->uncompressed_bytes);
  }
  return {};
}

}  // namespace pullagent::puller
