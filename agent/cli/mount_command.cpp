#include "agent/cli/mount_command.h"

#include <spdlog/spdlog.h>

#include <iostream>

#include "agent/cli/state_dir_option.h"
#include "agent/common/args.h"
#include "agent/common/exit_codes.h"
#include "agent/common/log_options.h"
#include "puller/snapshot/overlay_mount.h"
#include "puller/snapshot/snapshot_store.h"
#include "puller/state/published_image.h"

namespace pullagent::agent {
namespace {
namespace fs = std::filesystem;

constexpr const char* kMountUsage =
    R"(usage: pullagent mount IMAGE TARGET [--upper DIR --work DIR] [--state DIR]

Mounts the root filesystem of an image published in the state dir at TARGET (an existing
directory): the overlay of its layer snapshots, read-only; with --upper and --work (empty
directories on one filesystem), writable, changes going to DIR. An image published as a plain
tree (flat storage) is bind-mounted read-only, or used as the lower layer under --upper.
IMAGE is the manifest digest (sha256:...), the image's directory (DIR/images/<hex>), or a
bundle published with `pullagent pull --bundle` (its layers in the same --state). A layer the
service still reads in place (lazy pulling) is mounted from its FUSE mount while it serves it.

options:
  --state DIR         the state dir (default: the agent config's stateDir, else
                      /var/lib/pullagent); it must exist
  --config FILE       agent config naming the state dir (default /etc/pullagent/agent.json)
  --upper DIR         the writable layer
  --work DIR          overlayfs's work directory, beside --upper
  --log-level LEVEL   trace, debug, info (default), warn, error
  --log-format FORMAT text (default), journal or json
)";

constexpr const char* kUnmountUsage = R"(usage: pullagent unmount TARGET

Unmounts what `pullagent mount` mounted at TARGET.
)";

int fail(const std::string& command, const Error& error) {
  std::cerr << "pullagent " << command << ": " << error.describe() << "\n";
  return exitCodeFor(error);
}

// The image's directory: in the state dir from a digest, else the path given (an image
// directory of the state dir, or a bundle published with --bundle over its snapshots).
Result<fs::path> imageDirectory(const std::string& image, const puller::StateDir& state) {
  if (image.starts_with("sha256:")) {
    ASSIGN_OR_RETURN(auto digest, puller::Digest::parse(image));
    return state.image(digest);
  }
  return fs::absolute(image).lexically_normal();
}

// The layer directories, top first. Derived from the image config the image was published
// with and the state dir's snapshot store, never read as paths from a file: whatever is in the
// image directory, only snapshots of this state dir are ever mounted, and a layer still read in
// place (lazy pulling) only where this state dir's lazy host serves it now.
Result<std::vector<fs::path>> layerDirectories(const fs::path& image_dir,
                                               const puller::StateDir& state) {
  ASSIGN_OR_RETURN(auto published, puller::publishedRootfs(image_dir));
  if (published.flat)
    return std::vector<fs::path>{image_dir / "rootfs"};  // a plain tree (flat storage)
  const puller::SnapshotStore snapshots(state.snapshots());
  const auto& chain = published.chain;
  std::vector<fs::path> lowers;
  for (size_t below = chain.size(); below-- > 0;) {
    if (auto in_place = published.in_place.find(below); in_place != published.in_place.end()) {
      RETURN_IF_ERROR(puller::inPlaceLayerServed(state, in_place->second));
      lowers.push_back(in_place->second);
      continue;
    }
    if (!snapshots.has(chain[below])) {
      return makeError(ErrorCode::kNotFound, "the snapshot of layer chain " + chain[below].str() +
                                                 " is missing from " + snapshots.root().string());
    }
    lowers.push_back(snapshots.layerDir(chain[below]));
  }
  return lowers;
}

}  // namespace

namespace {

int runMount(const ParsedArgs& args, const ProcessEnvironment& /*env*/,
             const Environment& environment) {
  if (args.option("upper").has_value() != args.option("work").has_value())
    return usageError(mountCommand(), "--upper and --work go together");
  auto chosen = existingStateDir(args, environment);
  if (!chosen)
    return fail("mount", chosen.error());
  const puller::StateDir state(fs::absolute(chosen->root()));
  auto image_dir = imageDirectory(args.positionals[0], state);
  if (!image_dir)
    return fail("mount", image_dir.error());
  auto lowers = layerDirectories(*image_dir, state);
  if (!lowers)
    return fail("mount", lowers.error());
  auto spec = args.option("upper")
                  ? puller::writableView(*lowers, fs::absolute(*args.option("upper")),
                                         fs::absolute(*args.option("work")))
                  : puller::readOnlyView(*lowers);
  if (!spec)
    return fail("mount", spec.error());
  const fs::path target = fs::absolute(args.positionals[1]);
  if (auto mounted = puller::mountSpec(*spec, target); !mounted)
    return fail("mount", mounted.error());
  spdlog::info("mounted {} at {} ({} layers{})", image_dir->filename().string(), target.string(),
               lowers->size(), args.option("upper") ? ", writable" : ", read-only");
  return kExitOk;
}

}  // namespace

const Command& mountCommand() {
  static const Command command{"mount",
                               "IMAGE TARGET",
                               "mount a published image's root filesystem",
                               kMountUsage,
                               {"state", "config", "upper", "work"},
                               {},
                               2,
                               2,
                               {},
                               false,
                               runMount};
  return command;
}

namespace {

int runUnmount(const ParsedArgs& args, const ProcessEnvironment& /*env*/,
               const Environment& /*environment*/) {
  if (auto done = puller::unmount(fs::absolute(args.positionals[0])); !done)
    return fail("unmount", done.error());
  return kExitOk;
}

}  // namespace

const Command& unmountCommand() {
  static const Command command{"unmount",
                               "TARGET",
                               "unmount what `pullagent mount` mounted",
                               kUnmountUsage,
                               {},
                               {},
                               1,
                               1,
                               {},
                               false,
                               runUnmount};
  return command;
}

}  // namespace pullagent::agent
