// Manifests, indexes and image configs as a hostile registry serves them. The first byte picks
// the Content-Type the bytes arrive with.
#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <variant>

#include "puller/oci/manifest.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace pullagent::puller;
  static constexpr std::array<std::string_view, 6> kTypes = {
      media_type::kOciManifest,        media_type::kOciIndex, media_type::kDockerManifest,
      media_type::kDockerManifestList, "application/json",    "text/plain"};
  if (size == 0)
    return 0;
  const std::string_view type = kTypes[data[0] % kTypes.size()];
  const std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (auto document = parseManifest(bytes, type)) {
    if (auto* index = std::get_if<ImageIndex>(&document.value()))
      (void)selectPlatform(*index, Platform{"linux", "amd64", "", ""});
  }
  (void)parseImageConfig(bytes);
  return 0;
}
