#pragma once

#include <cstddef>
#include <filesystem>
#include <string>

#include "base/error.h"

namespace pullagent {

enum class Links { kFollow, kRefuse };

// Reads a whole regular file of at most `max_bytes`. Opened without blocking and checked with
// fstat, so a FIFO, a device (/dev/zero), a socket or a directory put in a file's place is an
// error instead of a hang or an endless read; with Links::kRefuse a symbolic link is refused too.
// Errors: kNotFound (missing), kResourceExhausted (larger than max_bytes), kInvalidArgument (not
// a regular file), others from errno.
Result<std::string> readRegularFile(const std::filesystem::path& path, size_t max_bytes,
                                    Links links = Links::kRefuse);

}  // namespace pullagent
