#pragma once

#include <string>
#include <vector>

#include <cstdint>

#include "base/confined_root.h"
#include "base/error.h"
#include "puller/oci/digest.h"
#include "puller/unpack/layer_stream.h"

namespace pullagent::puller {

struct ApplyOptions {
  LayerLimits limits;
  // Ownership, device nodes and security.capability need root; without it they are skipped
  // (ownership silently, devices with a warning).
  bool privileged = false;
  // The tree is (or becomes) an overlayfs layer: a layer entry that overlayfs would read as its
  // own metadata is refused (a 0:0 character device is a whiteout to it) or dropped (overlay's
  // xattrs), so that no layer can hide or redirect the content of the layers below it.
  bool overlay_lower = false;
};

struct AppliedLayer {
  Digest diff_id;  // SHA-256 of the whole decompressed stream, trailing bytes included
  int64_t entries = 0;
  int64_t uncompressed_bytes = 0;
  // Directories the layer marked opaque (.wh..wh..opq), as paths inside the root.
  std::vector<std::string> opaque_dirs;
};

// Applies one OCI layer changeset onto `root`: regular files, directories, symlinks, hardlinks,
// devices and FIFOs, modes, owners, mtimes and safe xattrs, with whiteouts and opaque
// directories hiding lower-layer content. Every path is resolved through ConfinedRoot and
// metadata is applied through the fd that was created, so nothing outside the root is touched
// whatever the archive says.
Result<AppliedLayer> applyLayer(const ConfinedRoot& root, LayerStream& stream,
                                const ApplyOptions& options);

// libarchive and the decompressors it reads layers with, for --version.
std::string libarchiveVersion();

}  // namespace pullagent::puller
