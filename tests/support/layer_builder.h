#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace pullagent::testing {

// Writes layer tarballs with libarchive's write API, as hostile as a test wants them.
class LayerBuilder {
 public:
  LayerBuilder& file(const std::string& name, const std::string& content, mode_t mode = 0644,
                     int64_t uid = 0, int64_t gid = 0);
  LayerBuilder& dir(const std::string& name, mode_t mode = 0755, int64_t mtime = 1600000000);
  LayerBuilder& symlink(const std::string& name, const std::string& target);
  LayerBuilder& hardlink(const std::string& name, const std::string& target);
  LayerBuilder& device(const std::string& name, mode_t type, unsigned major, unsigned minor);
  LayerBuilder& xattr(const std::string& name, const std::string& value);  // on the next entry

  // The uncompressed tar, optionally followed by `trailing` bytes after the end marker.
  std::string tar(const std::string& trailing = "") const;
  std::string gzip(const std::string& trailing = "") const;
  std::string zstd() const;

 private:
  struct Entry {
    std::string name;
    mode_t type = 0;
    mode_t mode = 0;
    std::string content;
    std::string link;
    bool hard = false;
    int64_t uid = 0;
    int64_t gid = 0;
    int64_t mtime = 1600000000;
    unsigned major = 0;
    unsigned minor = 0;
    std::map<std::string, std::string> xattrs = {};
  };
  std::vector<Entry> entries_;
  std::map<std::string, std::string> pending_xattrs_;
  LayerBuilder& add(Entry entry);
};

std::string gzipBytes(const std::string& data);
std::string zstdBytes(const std::string& data);

}  // namespace pullagent::testing
