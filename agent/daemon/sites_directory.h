#pragma once

#include <filesystem>
#include <map>
#include <string>

#include "base/error.h"
#include "base/unique_fd.h"

namespace pullagent::agent {

// A site config file as last seen in the sites directory.
struct SiteFile {
  std::filesystem::path path;
  std::string sha256;  // of its bytes: what "changed" means; empty when unreadable
};

// True for names the agent takes as sites: "<site>.json" with a site name of letters, digits,
// '.', '_' and '-' (App Service site names are stricter), not starting with '.', so editors'
// and atomic writers' temporary files are ignored.
bool isSiteFileName(const std::string& file_name);

// The site files of `dir` by site name. A missing directory has no sites.
std::map<std::string, SiteFile> scanSites(const std::filesystem::path& dir);

// inotify on the sites directory: tells when a rescan is worth doing. The periodic rescan stays
// the safety net (an overflowed queue, a directory created later, network file systems).
class SitesWatcher {
 public:
  // Watches `dir` when it exists; otherwise fd() is -1 and only rescans see changes.
  static SitesWatcher create(const std::filesystem::path& dir);
  int fd() const { return fd_.get(); }
  // Reads the pending events; true when any may concern a site file.
  bool drain();

 private:
  UniqueFd fd_;
};

}  // namespace pullagent::agent
