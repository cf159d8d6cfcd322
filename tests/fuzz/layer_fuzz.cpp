// Layer archives into a scratch root, with a canary tree beside it that must never change:
// whatever the tar says, nothing outside the root is created, changed or removed.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "puller/unpack/layer_applier.h"

namespace fs = std::filesystem;

namespace {

struct Scratch {
  fs::path top;
  fs::path root;
  fs::path canary;
  Scratch() {
    char name[] = "/tmp/pullagent-fuzz-XXXXXX";
    top = ::mkdtemp(name);
    root = top / "root";
    canary = top / "canary";
    fs::create_directories(canary / "dir");
    std::ofstream(canary / "dir" / "file") << "canary";
    fs::create_symlink("dir/file", canary / "link");
  }
  bool canaryIntact() const {
    std::error_code ec;
    std::size_t count = 0;
    for (const auto& entry : fs::recursive_directory_iterator(canary, ec)) {
      (void)entry;
      ++count;
    }
    std::ifstream in(canary / "dir" / "file");
    std::string content((std::istreambuf_iterator<char>(in)), {});
    return count == 3 && content == "canary" && fs::read_symlink(canary / "link", ec) == "dir/file";
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace pullagent;
  static Scratch scratch;
  std::error_code ec;
  fs::remove_all(scratch.root, ec);
  fs::create_directories(scratch.root);

  UniqueFd blob(::memfd_create("layer", MFD_CLOEXEC));
  if (!blob.valid() || ::write(blob.get(), data, size) != static_cast<ssize_t>(size) ||
      ::lseek(blob.get(), 0, SEEK_SET) != 0) {
    return 0;
  }
  puller::ApplyOptions options;
  options.limits.max_uncompressed_bytes = 16 << 20;
  options.limits.max_entries = 4096;
  auto stream = puller::openLayerStream(std::move(blob), "application/vnd.oci.image.layer.v1.tar",
                                        options.limits);
  auto root = ConfinedRoot::open(scratch.root);
  if (stream && root)
    (void)puller::applyLayer(root.value(), **stream, options);
  if (!scratch.canaryIntact())
    __builtin_trap();
  return 0;
}
