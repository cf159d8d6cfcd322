#pragma once

#include <optional>
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
  // The root is an empty directory that becomes an overlayfs layer on its own, without the
  // layers below it present (so that layers can be unpacked side by side): whiteouts are written
  // as overlayfs whiteouts (0:0 character devices), opaque directories as the
  // trusted.overlay.opaque xattr. An entry whose result depends on the layers below - a parent
  // directory the layer does not create itself, a path through a symlink, a hardlink to a file
  // the layer does not hold - ends the apply early with AppliedLayer::needs_lower_layers set;
  // the layer must then be applied over its lower layers (overlay_lower on a mounted overlay).
  // Implies overlay_lower; needs root (device nodes, trusted.* xattrs).
  bool standalone_upper = false;
};

struct AppliedLayer {
  Digest diff_id;  // SHA-256 of the whole decompressed stream, trailing bytes included
  int64_t entries = 0;
  int64_t uncompressed_bytes = 0;
  // Directories the layer marked opaque (.wh..wh..opq), as paths inside the root.
  std::vector<std::string> opaque_dirs;
  // Set (with the entry and why) when a standalone_upper apply met an entry that needs the
  // layers below; nothing else in the result is meaningful then.
  std::optional<std::string> needs_lower_layers;
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
