#include "agent/daemon/sites_directory.h"

#include <spdlog/spdlog.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "agent/config/config_files.h"
#include "agent/config/site_config.h"
#include "agent/site/site_state.h"
#include "base/atomic_file.h"
#include "base/redact.h"
#include "puller/oci/sha256.h"

namespace pullagent::agent {

Result<std::map<std::string, SiteFile>> scanSites(const std::filesystem::path& dir) {
  std::map<std::string, SiteFile> sites;
  std::error_code ec;
  std::filesystem::directory_iterator entries(dir, ec);
  if (ec)
    return errnoError(ec.value(), "read the sites directory", dir);
  for (auto it = entries; it != std::filesystem::directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (!isSiteFileName(name))
      continue;
    SiteFile file{it->path(), ""};
    auto text = readConfigText(it->path());
    if (!text && text.error().code == ErrorCode::kNotFound)
      continue;  // removed between the listing and the read
    if (text) {
      file.sha256 = puller::Sha256::of(text.value()).hex();
      file.stopped = siteStoppedIn(text.value());
    }
    sites.emplace(name.substr(0, name.size() - 5), std::move(file));
  }
  if (ec)
    return errnoError(ec.value(), "read the sites directory", dir);
  return sites;
}

SitesWatcher SitesWatcher::create(const std::filesystem::path& dir) {
  SitesWatcher watcher;
  watcher.dir_ = dir;
  UniqueFd fd(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  if (!fd.valid()) {
    spdlog::warn("inotify unavailable ({}); sites are rescanned periodically only",
                 std::strerror(errno));
    return watcher;
  }
  watcher.fd_ = std::move(fd);
  // The parent tells when the directory (or the link that names it) is created, renamed in or
  // out, or removed.
  const auto parent = dir.parent_path().empty() ? std::filesystem::path(".") : dir.parent_path();
  watcher.parent_watch_ =
      ::inotify_add_watch(watcher.fd_.get(), parent.c_str(),
                          IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_ONLYDIR);
  if (watcher.parent_watch_ < 0) {
    spdlog::warn("cannot watch {} ({}); a replaced sites directory is seen at the next rescan",
                 safeQuoted(parent.string()), std::strerror(errno));
  }
  watcher.armDirectory();
  return watcher;
}

void SitesWatcher::armDirectory() {
  if (dir_watch_ >= 0)
    ::inotify_rm_watch(fd_.get(), dir_watch_);  // fails harmlessly for a watch already gone
  const uint32_t mask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_CREATE |
                        IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR;
  dir_watch_ = ::inotify_add_watch(fd_.get(), dir_.c_str(), mask);
  if (dir_watch_ < 0 && errno != ENOENT) {
    spdlog::warn("cannot watch {} ({}); sites are rescanned periodically only",
                 safeQuoted(dir_.string()), std::strerror(errno));
  }
}

bool SitesWatcher::drain() {
  if (!fd_.valid())
    return false;
  bool relevant = false;
  bool rearm = false;
  const std::string dir_name = dir_.filename().string();
  alignas(inotify_event) char buffer[16 * 1024];
  while (true) {
    ssize_t n = ::read(fd_.get(), buffer, sizeof buffer);
    if (n <= 0)
      break;  // EAGAIN: drained
    for (ssize_t offset = 0; offset < n;) {
      const auto* event = reinterpret_cast<const inotify_event*>(buffer + offset);
      offset += static_cast<ssize_t>(sizeof(inotify_event) + event->len);
      if (event->wd == parent_watch_) {
        // Only the sites directory's own name matters in its parent.
        if (event->len > 0 && dir_name == event->name) {
          rearm = true;
          relevant = true;
        }
        continue;
      }
      // Anything in the directory may matter (the rescan sorts out which); the directory itself
      // gone or moved needs a new watch on whatever the path names now.
      if ((event->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED | IN_Q_OVERFLOW)) != 0)
        rearm = true;
      relevant = true;
    }
  }
  if (rearm)
    armDirectory();
  return relevant;
}

}  // namespace pullagent::agent
