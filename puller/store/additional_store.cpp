#include "puller/store/additional_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <vector>

#include "base/unique_fd.h"

namespace pullagent::puller {
namespace {

constexpr size_t kCopyChunk = 1 << 20;

// The blob's file in a state dir (content/blobs/sha256/<hex>) or an OCI layout
// (blobs/sha256/<hex>): opened without following a link, a regular file of the blob's size.
UniqueFd openStoredBlob(const std::filesystem::path& root, const Descriptor& blob) {
  for (const auto& dir : {ContentStore::blobsDir(root / "content"), ContentStore::blobsDir(root)}) {
    UniqueFd fd(
        ::open((dir / blob.digest.hex()).c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
    struct stat info {};
    if (fd.valid() && ::fstat(fd.get(), &info) == 0 && S_ISREG(info.st_mode) &&
        info.st_size == blob.size) {
      return fd;
    }
  }
  return UniqueFd();
}

}  // namespace

bool AdditionalStore::serves(const std::string& registry) const {
  return std::find(registries.begin(), registries.end(), registry) != registries.end();
}

Result<bool> copyFromStore(const AdditionalStore& from, const Descriptor& blob, ContentStore& store,
                           const Context& ctx, const std::function<void()>& verified) {
  UniqueFd fd = openStoredBlob(from.root, blob);
  if (!fd.valid())
    return false;
  ASSIGN_OR_RETURN(auto ingest,
                   store.beginIngest(blob.digest, blob.size, "store:" + from.root.string(), ctx));
  if (!ingest)
    return false;  // stored meanwhile by another pull: the reuse rules decide on that copy
  if (ingest->offset() != 0)
    RETURN_IF_ERROR(ingest->restart());
  std::vector<char> buffer(kCopyChunk);
  for (;;) {
    RETURN_IF_ERROR(ctx.check());
    const ssize_t n = ::read(fd.get(), buffer.data(), buffer.size());
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return errnoError(errno, "read", from.root / blob.digest.hex());
    }
    if (n == 0)
      break;
    RETURN_IF_ERROR(ingest->write(std::string_view(buffer.data(), static_cast<size_t>(n))));
  }
  RETURN_IF_ERROR(ingest->commit(verified));
  return true;
}

}  // namespace pullagent::puller
