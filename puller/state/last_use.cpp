#include "puller/state/last_use.h"

#include <sys/stat.h>

#include <cerrno>

#include <nlohmann/json.hpp>

#include "base/atomic_file.h"
#include "base/bounded_read.h"
#include "base/json_reader.h"

namespace pullagent::puller {
namespace {

constexpr size_t kMaxLastUseBytes = 256;

// The records' directory is the state dir's own: a link in its place is never followed.
bool ownDirectory(const std::filesystem::path& dir) {
  struct stat info {};
  return ::lstat(dir.c_str(), &info) == 0 && S_ISDIR(info.st_mode);
}

}  // namespace

Status LastUse::touch(const Digest& image, std::chrono::system_clock::time_point at) const {
  if (::mkdir(dir_.c_str(), 0700) != 0 && errno != EEXIST)
    return errnoError(errno, "create", dir_);
  if (!ownDirectory(dir_)) {
    return makeError(ErrorCode::kPermissionDenied,
                     dir_.string() + " is not a directory of its own (a symbolic link?)");
  }
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(at.time_since_epoch()).count();
  return writeFileAtomic(dir_ / image.hex(), nlohmann::json{{"unixMs", ms}}.dump() + "\n");
}

std::optional<std::chrono::system_clock::time_point> LastUse::read(const Digest& image) const {
  auto text = readRegularFile(dir_ / image.hex(), kMaxLastUseBytes);
  if (!text)
    return std::nullopt;
  // Anything but a record written by write() reads as "oldest" (no time): never an error.
  auto doc = parseJson(*text, "last use", ErrorCode::kProtocol, 4);
  if (!doc)
    return std::nullopt;
  // At most 2^43 ms (about 278 years): the clock's nanoseconds cannot overflow.
  auto ms = JsonReader(*doc, "last use")["unixMs"].integer(0, int64_t{1} << 43);
  if (!ms)
    return std::nullopt;
  return std::chrono::system_clock::time_point(std::chrono::milliseconds(*ms));
}

void LastUse::keepOnly(const std::set<Digest>& images) const {
  if (!ownDirectory(dir_))
    return;
  std::error_code ec;
  std::filesystem::directory_iterator entries(dir_, ec);
  if (ec)
    return;
  for (auto it = entries; it != std::filesystem::directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    auto digest = Digest::parse("sha256:" + name);
    // Names that are no record (a write in progress beside it) are not this function's.
    if (digest && images.count(*digest) == 0)
      std::filesystem::remove(it->path(), ec);
    if (ec)
      break;
  }
}

}  // namespace pullagent::puller
