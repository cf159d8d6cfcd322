#pragma once

#include <filesystem>
#include <string_view>

#include "base/error.h"

namespace pullagent {

// Writes `content` to a temporary file beside `path`, fsyncs it, renames it over `path` and
// fsyncs the directory: readers see the old file or the new one, never a torn one.
Status writeFileAtomic(const std::filesystem::path& path, std::string_view content);

// fsync of a directory, so that a rename inside it survives a crash.
Status syncDirectory(const std::filesystem::path& dir);

}  // namespace pullagent
