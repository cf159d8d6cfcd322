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
  std::string sha256;    // of its bytes: what "changed" means; empty when unreadable
  bool stopped = false;  // the site says "state": "Stopped" (siteStoppedIn)
};

// The site files of `dir` by site name. A missing or unreadable directory is an error, never
// "no sites": a sites directory that is briefly away (replaced by a deployment tool, a remount)
// must not read as every site removed.
Result<std::map<std::string, SiteFile>> scanSites(const std::filesystem::path& dir);

// inotify on the sites directory: tells when a rescan is worth doing. It watches the directory
// and its parent, so a directory that is removed, renamed, replaced or swapped behind a symlink
// (as deployment tools do) is followed: the watch is re-armed on the new one. The periodic
// rescan stays the safety net (an overflowed queue, network file systems).
class SitesWatcher {
 public:
  static SitesWatcher create(const std::filesystem::path& dir);
  int fd() const { return fd_.get(); }
  // Reads the pending events, re-arming the directory's watch when the directory changed;
  // true when any may concern a site file.
  bool drain();

 private:
  void armDirectory();

  std::filesystem::path dir_;
  UniqueFd fd_;
  int dir_watch_ = -1;
  int parent_watch_ = -1;
};

}  // namespace pullagent::agent
