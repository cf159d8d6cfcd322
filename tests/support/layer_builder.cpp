#include "tests/support/layer_builder.h"

#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>
#include <zlib.h>
#include <zstd.h>

#include <stdexcept>

namespace pullagent::testing {

LayerBuilder& LayerBuilder::add(Entry entry) {
  entry.xattrs = std::move(pending_xattrs_);
  pending_xattrs_.clear();
  entries_.push_back(std::move(entry));
  return *this;
}

LayerBuilder& LayerBuilder::file(const std::string& name, const std::string& content, mode_t mode,
                                 int64_t uid, int64_t gid) {
  return add({name, AE_IFREG, mode, content, "", false, uid, gid});
}

LayerBuilder& LayerBuilder::dir(const std::string& name, mode_t mode, int64_t mtime) {
  Entry entry{name, AE_IFDIR, mode, "", "", false, 0, 0};
  entry.mtime = mtime;
  return add(entry);
}

LayerBuilder& LayerBuilder::symlink(const std::string& name, const std::string& target) {
  return add({name, AE_IFLNK, 0777, "", target, false, 0, 0});
}

LayerBuilder& LayerBuilder::hardlink(const std::string& name, const std::string& target) {
  return add({name, AE_IFREG, 0644, "", target, true, 0, 0});
}

LayerBuilder& LayerBuilder::device(const std::string& name, mode_t type, unsigned major,
                                   unsigned minor) {
  Entry entry{name, type, 0620, "", "", false, 0, 0};
  entry.major = major;
  entry.minor = minor;
  return add(entry);
}

LayerBuilder& LayerBuilder::xattr(const std::string& name, const std::string& value) {
  pending_xattrs_[name] = value;
  return *this;
}

std::string LayerBuilder::tar(const std::string& trailing) const {
  archive* writer = archive_write_new();
  archive_write_set_format_pax_restricted(writer);
  archive_write_set_bytes_in_last_block(writer, 1);
  std::string out(64 << 20, '\0');
  size_t used = 0;
  if (archive_write_open_memory(writer, out.data(), out.size(), &used) != ARCHIVE_OK) {
    throw std::runtime_error("archive_write_open_memory");
  }
  for (const auto& e : entries_) {
    archive_entry* entry = archive_entry_new();
    archive_entry_set_pathname(entry, e.name.c_str());
    archive_entry_set_uid(entry, e.uid);
    archive_entry_set_gid(entry, e.gid);
    archive_entry_set_mtime(entry, e.mtime, 0);
    if (e.hard) {
      archive_entry_set_filetype(entry, AE_IFREG);
      archive_entry_set_perm(entry, e.mode);
      archive_entry_set_hardlink(entry, e.link.c_str());
      archive_entry_set_size(entry, 0);
    } else {
      archive_entry_set_filetype(entry, e.type);
      archive_entry_set_perm(entry, e.mode);
      if (e.type == AE_IFLNK)
        archive_entry_set_symlink(entry, e.link.c_str());
      if (e.type == AE_IFCHR || e.type == AE_IFBLK) {
        archive_entry_set_rdevmajor(entry, e.major);
        archive_entry_set_rdevminor(entry, e.minor);
      }
      archive_entry_set_size(entry,
                             e.type == AE_IFREG ? static_cast<la_int64_t>(e.content.size()) : 0);
    }
    for (const auto& [name, value] : e.xattrs) {
      archive_entry_xattr_add_entry(entry, name.c_str(), value.data(), value.size());
    }
    archive_write_header(writer, entry);
    if (e.type == AE_IFREG && !e.hard && !e.content.empty()) {
      archive_write_data(writer, e.content.data(), e.content.size());
    }
    archive_entry_free(entry);
  }
  archive_write_close(writer);
  archive_write_free(writer);
  out.resize(used);
  return out + trailing;
}

std::string gzipBytes(const std::string& data) {
  z_stream z{};
  deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&z, data.size()) + 64, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

std::string zstdBytes(const std::string& data) {
  std::string out(ZSTD_compressBound(data.size()), '\0');
  out.resize(ZSTD_compress(out.data(), out.size(), data.data(), data.size(), 3));
  return out;
}

std::string LayerBuilder::gzip(const std::string& trailing) const {
  return gzipBytes(tar(trailing));
}

std::string LayerBuilder::zstd() const {
  return zstdBytes(tar());
}

}  // namespace pullagent::testing
