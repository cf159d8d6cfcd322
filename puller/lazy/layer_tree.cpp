#include "puller/lazy/layer_tree.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "base/confined_root.h"

namespace pullagent::puller::estargz {
namespace {

constexpr std::string_view kWhiteoutPrefix = ".wh.";
constexpr std::string_view kWhiteoutMetaPrefix = ".wh..wh.";
constexpr std::string_view kOpaqueMarker = ".wh..wh..opq";
constexpr const char* kOverlayOpaque = "trusted.overlay.opaque";

mode_t typeOf(EntryType type) {
  switch (type) {
    case EntryType::kDirectory:
      return S_IFDIR;
    case EntryType::kSymlink:
      return S_IFLNK;
    case EntryType::kCharDevice:
      return S_IFCHR;
    case EntryType::kBlockDevice:
      return S_IFBLK;
    case EntryType::kFifo:
      return S_IFIFO;
    case EntryType::kRegular:
    case EntryType::kHardlink:
      break;
  }
  return S_IFREG;
}

// What a layer may carry as extended attributes, as the extractor applies them: user.* (never
// overlay's own user.overlay.*, nor any trusted.* that would steer overlayfs: redirects,
// metacopy, opaque), and file capabilities. Widening this would need the lazy layers' records
// made anew: a connection adopted across a restart keeps what the kernel learnt of it, and a
// mount that answered "no xattrs here" (LayerTree::anyXattrs) is never asked again.
bool allowedXattr(std::string_view name) {
  if (name.starts_with("user."))
    return !name.starts_with("user.overlay.");
  return name == "security.capability";
}

}  // namespace

LayerTree::LayerTree(const Toc& toc) {
  Node root;
  root.type = S_IFDIR;
  nodes_.push_back(root);
  std::map<std::string, size_t> by_path;  // regular files, for hardlinks
  for (const Entry& entry : toc.entries) {
    if (entry.path.empty()) {
      if (entry.type == EntryType::kDirectory)
        nodes_[0].entry = &entry;  // "./": the root's own metadata
      continue;
    }
    const size_t parent = directory(entry.path, entry.path.size() - 1);
    const std::string& base = entry.path.back();
    if (base.starts_with(kWhiteoutPrefix)) {
      if (base == kOpaqueMarker) {
        nodes_[parent].opaque = true;
      } else if (!base.starts_with(kWhiteoutMetaPrefix)) {
        const std::string hidden = base.substr(kWhiteoutPrefix.size());
        // ".wh.", ".wh.." and ".wh..." name nothing a layer may hide (the extractor refuses
        // them too).
        if (!hidden.empty() && hidden != "." && hidden != ".." &&
            nodes_[parent].children.count(hidden) == 0) {
          Node whiteout;
          whiteout.type = S_IFCHR;
          whiteout.whiteout = true;
          nodes_[parent].children.emplace(hidden, nodes_.size());
          nodes_.push_back(whiteout);
        }
      }
      continue;
    }
    if (entry.type == EntryType::kHardlink) {
      // The TOC reader checked that it names an earlier regular file.
      auto target = by_path.find(entry.link_target);
      if (target == by_path.end())
        continue;
      ++nodes_[target->second].links;
      nodes_[parent].children.insert_or_assign(base, target->second);
      continue;
    }
    if (entry.type == EntryType::kDirectory) {
      const size_t index = directory(entry.path, entry.path.size());
      nodes_[index].entry = &entry;
      continue;
    }
    Node node;
    node.entry = &entry;
    node.type = typeOf(entry.type);
    const size_t index = nodes_.size();
    nodes_.push_back(node);
    nodes_[parent].children.insert_or_assign(base, index);
    if (entry.type == EntryType::kRegular)
      by_path[ConfinedRoot::join(entry.path, entry.path.size())] = index;
  }
  for (size_t index = 0; index < nodes_.size() && !any_xattrs_; ++index)
    any_xattrs_ = !xattrs(index).empty();
}

size_t LayerTree::directory(const std::vector<std::string>& path, size_t count) {
  size_t at = 0;
  for (size_t i = 0; i < count; ++i) {
    auto it = nodes_[at].children.find(path[i]);
    if (it != nodes_[at].children.end() && nodes_[it->second].type == S_IFDIR) {
      at = it->second;
      continue;
    }
    // Missing, or a non-directory in the way (the TOC reader refuses names twice; a later
    // directory wins as the extractor's would).
    Node made;
    made.type = S_IFDIR;
    const size_t index = nodes_.size();
    nodes_.push_back(made);
    nodes_[at].children.insert_or_assign(path[i], index);
    at = index;
  }
  return at;
}

std::optional<size_t> LayerTree::find(std::string_view path) const {
  size_t at = 0;
  while (!path.empty()) {
    if (path.front() == '/') {
      path.remove_prefix(1);
      continue;
    }
    const auto slash = path.find('/');
    const std::string_view name = path.substr(0, slash);
    auto it = nodes_[at].children.find(name);
    if (it == nodes_[at].children.end())
      return std::nullopt;
    at = it->second;
    path.remove_prefix(slash == std::string_view::npos ? path.size() : slash);
  }
  return at;
}

struct stat LayerTree::attributes(size_t index) const {
  const Node& node = nodes_[index];
  struct stat st {};
  st.st_ino = static_cast<ino_t>(index + 1);
  st.st_nlink = node.type == S_IFDIR ? 2 : node.links;
  if (node.whiteout) {
    st.st_mode = S_IFCHR;
    st.st_rdev = makedev(0, 0);
    return st;
  }
  const Entry* entry = node.entry;
  const mode_t permissions = entry != nullptr ? static_cast<mode_t>(entry->mode & 07777) : 0755;
  st.st_mode = node.type | permissions;
  if (entry == nullptr)
    return st;
  st.st_uid = entry->uid;
  st.st_gid = entry->gid;
  st.st_mtim.tv_sec = entry->modified;
  st.st_atim = st.st_mtim;
  st.st_ctim = st.st_mtim;
  if (node.type == S_IFREG) {
    st.st_size = static_cast<off_t>(entry->size);
  } else if (node.type == S_IFLNK) {
    st.st_size = static_cast<off_t>(entry->link_target.size());
  } else if (node.type == S_IFCHR || node.type == S_IFBLK) {
    st.st_rdev = makedev(entry->device_major, entry->device_minor);
  }
  st.st_blksize = 4096;
  st.st_blocks = (st.st_size + 511) / 512;
  return st;
}

std::map<std::string, std::string> LayerTree::xattrs(size_t index) const {
  std::map<std::string, std::string> out;
  const Node& node = nodes_[index];
  if (node.entry != nullptr && !node.whiteout) {
    for (const auto& [name, value] : node.entry->xattrs) {
      if (allowedXattr(name))
        out.emplace(name, value);
    }
  }
  if (node.opaque)
    out[kOverlayOpaque] = "y";
  return out;
}

}  // namespace pullagent::puller::estargz
