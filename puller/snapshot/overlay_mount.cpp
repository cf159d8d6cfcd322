#include "puller/snapshot/overlay_mount.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <thread>

#include "base/confined_root.h"
#include "base/json_reader.h"
#include "base/unique_fd.h"

namespace pullagent::puller {
namespace fs = std::filesystem;
namespace {

constexpr size_t kMaxMountData = 4095;  // one page, its terminating NUL included

// Options that make an overlay's upper layer depend on nothing but its own files: no index,
// no redirects of renamed directories, no metadata-only copies pointing at lower data.
constexpr const char* kSelfContainedUpper[] = {"index=off", "redirect_dir=off", "metacopy=off"};

// overlayfs splits lowerdir at ':' and the option string at ','; a path holding either (or
// the escape character) cannot be named in it.
Status checkLayerPath(const fs::path& path) {
  const std::string& text = path.native();
  if (text.empty() || text.find_first_of(":,\\") != std::string::npos) {
    return makeError(ErrorCode::kInvalidArgument,
                     "cannot name \"" + text + "\" in an overlay mount (':', ',' or '\\' in it)");
  }
  return {};
}

std::string joinLowers(const std::vector<fs::path>& lowers) {
  std::string joined;
  for (const auto& lower : lowers) {
    if (!joined.empty())
      joined += ':';
    joined += lower.native();
  }
  return joined;
}

std::string joinOptions(const std::vector<std::string>& options) {
  std::string data;
  for (const auto& option : options) {
    if (!data.empty())
      data += ',';
    data += option;
  }
  return data;
}

// The same options with every lowerdir relative to `base`, when all of them lie under it.
std::optional<std::vector<std::string>> relativeLowers(const std::vector<std::string>& options,
                                                       const fs::path& base) {
  std::vector<std::string> result;
  for (const auto& option : options) {
    if (!option.starts_with("lowerdir=")) {
      result.push_back(option);
      continue;
    }
    std::string rewritten = "lowerdir=";
    std::string_view rest = std::string_view(option).substr(9);
    bool first = true;
    while (!rest.empty() || first) {
      const size_t colon = rest.find(':');
      const std::string lower(rest.substr(0, colon));
      rest = colon == std::string_view::npos ? std::string_view() : rest.substr(colon + 1);
      const fs::path relative = fs::path(lower).lexically_relative(base);
      if (relative.empty() || relative.native().starts_with(".."))
        return std::nullopt;
      if (!first)
        rewritten += ':';
      rewritten += relative.native();
      first = false;
    }
    result.push_back(std::move(rewritten));
  }
  return result;
}

// The directory holding every lower layer's directory (a state dir's snapshots/).
std::optional<fs::path> commonLowerParent(const std::vector<std::string>& options) {
  for (const auto& option : options) {
    if (option.starts_with("lowerdir=")) {
      std::string_view rest = std::string_view(option).substr(9);
      return fs::path(std::string(rest.substr(0, rest.find(':')))).parent_path().parent_path();
    }
  }
  return std::nullopt;
}

}  // namespace

nlohmann::json MountSpec::toJson() const {
  return {{"type", type}, {"source", source}, {"options", options}};
}

Result<MountSpec> MountSpec::fromJson(const nlohmann::json& json, std::string_view what) {
  JsonReader reader(json, std::string(what));
  MountSpec spec;
  ASSIGN_OR_RETURN(spec.type, reader["type"].string());
  ASSIGN_OR_RETURN(spec.source, reader["source"].string());
  ASSIGN_OR_RETURN(auto options, reader["options"].elements());
  for (const auto& option : options) {
    ASSIGN_OR_RETURN(auto text, option.string());
    spec.options.push_back(std::move(text));
  }
  if (spec.type != "overlay" && spec.type != "bind") {
    return makeError(ErrorCode::kInvalidArgument,
                     std::string(what) + ".type: \"" + spec.type + "\" is not overlay or bind");
  }
  return spec;
}

Result<MountSpec> readOnlyView(const std::vector<fs::path>& lowers_top_first) {
  if (lowers_top_first.empty())
    return makeError(ErrorCode::kInvalidArgument, "an image without layers has no root to mount");
  for (const auto& lower : lowers_top_first)
    RETURN_IF_ERROR(checkLayerPath(lower));
  if (lowers_top_first.size() == 1)
    return MountSpec{"bind", lowers_top_first.front().native(), {"ro", "rbind"}};
  return MountSpec{"overlay", "overlay", {"index=off", "lowerdir=" + joinLowers(lowers_top_first)}};
}

Result<MountSpec> writableView(const std::vector<fs::path>& lowers_top_first, const fs::path& upper,
                               const fs::path& work) {
  if (lowers_top_first.empty())
    return makeError(ErrorCode::kInvalidArgument, "an image without layers has no root to mount");
  for (const auto& path : lowers_top_first)
    RETURN_IF_ERROR(checkLayerPath(path));
  RETURN_IF_ERROR(checkLayerPath(upper));
  RETURN_IF_ERROR(checkLayerPath(work));
  MountSpec spec{"overlay", "overlay", {}};
  spec.options.assign(std::begin(kSelfContainedUpper), std::end(kSelfContainedUpper));
  spec.options.push_back("lowerdir=" + joinLowers(lowers_top_first));
  spec.options.push_back("upperdir=" + upper.native());
  spec.options.push_back("workdir=" + work.native());
  return spec;
}

Status mountSpec(const MountSpec& spec, const fs::path& target) {
  if (spec.type == "bind") {
    bool read_only = false;
    for (const auto& option : spec.options)
      read_only = read_only || option == "ro";
    if (::mount(spec.source.c_str(), target.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0)
      return errnoError(errno, "bind mount " + spec.source + " on", target);
    if (read_only &&
        ::mount(nullptr, target.c_str(), nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY, nullptr) != 0) {
      const int err = errno;
      ::umount2(target.c_str(), MNT_DETACH);
      return errnoError(err, "make read-only", target);
    }
    return {};
  }
  std::vector<std::string> options = spec.options;
  std::string data = joinOptions(options);
  if (data.size() > kMaxMountData) {
    auto base = commonLowerParent(options);
    auto relative = base ? relativeLowers(options, *base) : std::nullopt;
    if (!relative || joinOptions(*relative).size() > kMaxMountData) {
      return makeError(ErrorCode::kResourceExhausted,
                       "the overlay's layer list is longer than the kernel takes in one mount (" +
                           std::to_string(data.size()) + " bytes)");
    }
    if (::chdir(base->c_str()) != 0)
      return errnoError(errno, "chdir", *base);
    data = joinOptions(*relative);
  }
  if (::mount(spec.source.c_str(), target.c_str(), spec.type.c_str(), 0, data.c_str()) != 0)
    return errnoError(errno, "mount overlay on", target);
  return {};
}

Status unmount(const fs::path& target) {
  if (::umount2(target.c_str(), UMOUNT_NOFOLLOW) != 0)
    return errnoError(errno, "unmount", target);
  return {};
}

Status ScopedMount::release() {
  if (target_.empty())
    return {};
  const fs::path target = std::exchange(target_, {});
  if (::umount2(target.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) != 0)
    return errnoError(errno, "unmount", target);
  return {};
}

Status enterPrivateMountNamespace() {
  if (::unshare(CLONE_FS | CLONE_NEWNS) != 0)
    return errnoError(errno, "unshare", "mount namespace");
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
    return errnoError(errno, "make private", "/");
  return {};
}

Status probeOverlaySupport(const fs::path& dir) {
  static std::atomic<int> counter{0};
  const fs::path scratch =
      dir / (".overlay-probe-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec)
    return errnoError(ec.value(), "create", dir);
  Status result;
  // In a thread of its own: the probe's mount namespace goes with it.
  std::thread probe([&] {
    auto run = [&]() -> Status {
      RETURN_IF_ERROR(enterPrivateMountNamespace());
      for (const char* sub : {"", "/a", "/a/d", "/b", "/upper", "/work", "/merged"}) {
        const fs::path path = scratch.native() + sub;
        if (::mkdir(path.c_str(), 0700) != 0)
          return errnoError(errno, "create", path);
      }
      UniqueFd file(::open((scratch / "a/d/f").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
      if (!file.valid())
        return errnoError(errno, "create", scratch / "a/d/f");
      ASSIGN_OR_RETURN(auto spec, writableView({scratch / "a", scratch / "b"}, scratch / "upper",
                                               scratch / "work"));
      RETURN_IF_ERROR(mountSpec(spec, scratch / "merged"));
      ScopedMount mounted(scratch / "merged");
      if (::unlink((scratch / "merged/d/f").c_str()) != 0)
        return errnoError(errno, "remove a lower file through", "an overlay");
      RETURN_IF_ERROR(mounted.release());
      struct stat whiteout {};
      if (::lstat((scratch / "upper/d/f").c_str(), &whiteout) != 0 || !S_ISCHR(whiteout.st_mode))
        return makeError(ErrorCode::kUnsupported, "overlayfs wrote no whiteout device");
      if (::setxattr((scratch / "upper/d").c_str(), "trusted.overlay.opaque", "y", 1, 0) != 0)
        return errnoError(errno, "set trusted.overlay.opaque on", scratch / "upper/d");
      return {};
    };
    result = run();
  });
  probe.join();
  UniqueFd parent(::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (parent.valid())
    (void)ConfinedRoot::removeAt(parent.get(), scratch.filename().native());
  return result;
}

}  // namespace pullagent::puller
