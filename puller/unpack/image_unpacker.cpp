#include "puller/unpack/image_unpacker.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "puller/oci/sha256.h"

namespace pullagent::puller {

Result<AppliedLayer> unpackLayer(const ContentStore& store, const Descriptor& layer,
                                 const Digest& diff_id, size_t index, const ConfinedRoot& root,
                                 const ApplyOptions& options) {
  const std::string what = "layer " + std::to_string(index) + " (" + layer.digest.str() + ")";
  auto path = store.blobPath(layer.digest);
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    return makeError(ErrorCode::kInternal, "open " + what + ": " + std::strerror(errno));
  }
  auto stream = openLayerStream(std::move(fd), layer.media_type, options.limits);
  if (!stream)
    return stream.error().context(what);
  auto applied = applyLayer(root, **stream, options);
  if (!applied)
    return applied.error().context(what);
  if (applied->needs_lower_layers) {
    spdlog::debug("{} {}: applied over the layers below it instead", what,
                  *applied->needs_lower_layers);
    return applied;
  }
  if (applied->diff_id != diff_id) {
    return makeError(ErrorCode::kDigestMismatch, what + " decompresses to " +
                                                     applied->diff_id.str() +
                                                     ", the image config says " + diff_id.str());
  }
  spdlog::info("{} applied: {} entries, {} bytes", what, applied->entries,
               applied->uncompressed_bytes);
  return applied;
}

Result<Digest> layerDiffId(const ContentStore& store, const Descriptor& layer,
                           const LayerLimits& limits) {
  const std::string what = "layer " + layer.digest.str();
  auto path = store.blobPath(layer.digest);
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid())
    return errnoError(errno, "open", path).context(what);
  auto stream = openLayerStream(std::move(fd), layer.media_type, limits);
  if (!stream)
    return stream.error().context(what);
  Sha256 hasher;
  std::string buffer(1 << 20, '\0');
  while (true) {
    auto read = (*stream)->read(buffer.data(), buffer.size());
    if (!read)
      return read.error().context(what);
    if (*read == 0)
      break;
    hasher.update({buffer.data(), *read});
  }
  return hasher.finish();
}

}  // namespace pullagent::puller
