#pragma once

#include <filesystem>
#include <map>
#include <string>

namespace pullagent::testing {

// Everything about a tree that extraction could change: per path its type, mode, owner, size,
// content hash or link target, extended attributes. Two snapshots compare equal when nothing
// changed.
using TreeSnapshot = std::map<std::string, std::string>;
TreeSnapshot snapshotTree(const std::filesystem::path& root);

}  // namespace pullagent::testing
