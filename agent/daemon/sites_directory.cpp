#include "agent/daemon/sites_directory.h"

#include <spdlog/spdlog.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "agent/config/config_files.h"
#include "puller/store/sha256.h"

namespace pullagent::agent {

bool isSiteFileName(const std::string& file_name) {
  constexpr std::string_view kSuffix = ".json";
  if (file_name.size() <= kSuffix.size() || file_name.size() > 64 + kSuffix.size() ||
      !file_name.ends_with(kSuffix) || file_name[0] == '.') {
    return false;
  }
  for (size_t i = 0; i < file_name.size() - kSuffix.size(); ++i) {
    const char c = file_name[i];
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok)
      return false;
  }
  return true;
}

std::map<std::string, SiteFile> scanSites(const std::filesystem::path& dir) {
  std::map<std::string, SiteFile> sites;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (!isSiteFileName(name) || !entry.is_regular_file(ec))
      continue;
    SiteFile file{entry.path(), ""};
    if (auto text = readConfigText(entry.path()))
      file.sha256 = puller::Sha256::of(text.value()).hex();
    sites.emplace(name.substr(0, name.size() - 5), std::move(file));
  }
  return sites;
}

SitesWatcher SitesWatcher::create(const std::filesystem::path& dir) {
  SitesWatcher watcher;
  UniqueFd fd(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  if (!fd.valid()) {
    spdlog::warn("inotify unavailable ({}); sites are rescanned periodically only",
                 std::strerror(errno));
    return watcher;
  }
  const uint32_t mask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_CREATE |
                        IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR;
  if (::inotify_add_watch(fd.get(), dir.c_str(), mask) < 0) {
    spdlog::warn("cannot watch {} ({}); sites are rescanned periodically only", dir.string(),
                 std::strerror(errno));
    return watcher;
  }
  watcher.fd_ = std::move(fd);
  return watcher;
}

bool SitesWatcher::drain() {
  if (!fd_.valid())
    return false;
  bool relevant = false;
  alignas(inotify_event) char buffer[16 * 1024];
  while (true) {
    ssize_t n = ::read(fd_.get(), buffer, sizeof buffer);
    if (n <= 0)
      return relevant;  // EAGAIN: drained
    // Any event may matter: a site file written, renamed in or out, removed; an overflowed
    // queue or the directory itself going away. The rescan sorts out which.
    relevant = true;
  }
}

}  // namespace pullagent::agent
