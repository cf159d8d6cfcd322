#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "puller/lazy/estargz_toc.h"

namespace pullagent::puller::estargz {

// A layer's files as overlayfs wants a lower layer (what its FUSE mount shows): the TOC's
// entries in a tree, parents the TOC leaves out made as plain directories, and OCI whiteouts
// turned into overlay's own ("<dir>/.wh.<name>" becomes a 0/0 character device "<name>";
// "<dir>/.wh..wh..opq" becomes the directory's trusted.overlay.opaque="y"), exactly as the
// extractor's snapshots are made. A hardlink is the node of the file it names.
class LayerTree {
 public:
  struct Node {
    const Entry* entry = nullptr;  // null: a directory the TOC leaves out, or a whiteout
    mode_t type = 0;               // S_IFDIR, S_IFREG, S_IFLNK, S_IFCHR, S_IFBLK, S_IFIFO
    bool whiteout = false;         // an overlay whiteout (0/0 character device)
    bool opaque = false;           // a directory that hides the layers below it
    uint32_t links = 1;            // names of this node (hardlinks)
    std::map<std::string, size_t, std::less<>> children;  // name -> node index
  };

  explicit LayerTree(const Toc& toc);

  // The node at `path` ("/", "/bin/sh"), or nullopt.
  std::optional<size_t> find(std::string_view path) const;
  const Node& node(size_t index) const { return nodes_[index]; }
  size_t size() const { return nodes_.size(); }

  // stat(2) of a node (st_ino is its index + 1).
  struct stat attributes(size_t index) const;
  // Its extended attributes, overlay's opaque marker included.
  std::map<std::string, std::string> xattrs(size_t index) const;
  // Whether any node has one: most layers have none, and their mounts need not be asked.
  bool anyXattrs() const { return any_xattrs_; }

 private:
  size_t directory(const std::vector<std::string>& path, size_t count);
  std::vector<Node> nodes_;  // [0] is the root
  bool any_xattrs_ = false;
};

}  // namespace pullagent::puller::estargz
