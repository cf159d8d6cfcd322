#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "puller/oci/digest.h"

// eStargz (protocols.md §18; containerd/stargz-snapshotter estargz/): a gzip'd tar made of
// separate gzip members, one per file chunk, so that a file's bytes can be fetched with a Range
// request and inflated alone; at its end a table of contents (TOC) and a fixed footer. This reads
// the footer and the TOC, both hostile input: the TOC's bytes must match the digest the (digest
// verified) manifest names, and every entry is bounded and confined before anything uses it.
namespace pullagent::puller::estargz {

// The layer descriptor's annotations.
inline constexpr std::string_view kTocDigestAnnotation = "containerd.io/snapshot/stargz/toc.digest";
inline constexpr std::string_view kUncompressedSizeAnnotation =
    "io.containers.estargz.uncompressed-size";
// The footer: an empty gzip member whose extra field holds the TOC's offset.
inline constexpr size_t kFooterSize = 51;
// The TOC's tar entry, and the landmark files that end the prioritized ("prefetch") files.
inline constexpr std::string_view kTocName = "stargz.index.json";
inline constexpr std::string_view kPrefetchLandmark = ".prefetch.landmark";
inline constexpr std::string_view kNoPrefetchLandmark = ".no.prefetch.landmark";
// Bounds: the TOC's gzip member and its JSON, its entries, one entry's extended attributes.
inline constexpr size_t kMaxTocMemberBytes = 16 * 1024 * 1024;
inline constexpr size_t kMaxTocJsonBytes = 64 * 1024 * 1024;
inline constexpr size_t kMaxEntries = 1 << 20;
inline constexpr size_t kMaxXattrs = 64;

// The TOC's offset in the blob, from the blob's last kFooterSize bytes (`footer`); it lies
// before the footer.
Result<uint64_t> parseFooter(std::string_view footer, uint64_t blob_size);

// One chunk of a regular file: the gzip member at `offset` in the blob inflates to the file's
// bytes [file_offset, file_offset + size), starting `inner_offset` bytes into the member.
struct Chunk {
  uint64_t offset = 0;
  uint64_t inner_offset = 0;
  uint64_t file_offset = 0;
  uint64_t size = 0;
  Digest digest;  // chunkDigest: of the chunk's bytes, checked before any reader sees them
};

enum class EntryType {
  kDirectory,
  kRegular,
  kSymlink,
  kHardlink,
  kCharDevice,
  kBlockDevice,
  kFifo
};

struct Entry {
  std::vector<std::string> path;  // clean components (ConfinedRoot::split)
  EntryType type = EntryType::kRegular;
  uint64_t size = 0;  // regular files
  uint32_t mode = 0;  // permission bits and setuid/setgid/sticky (07777)
  uint32_t uid = 0;
  uint32_t gid = 0;
  int64_t modified = 0;     // seconds since the epoch
  std::string link_target;  // symlink: as written; hardlink: the clean path it names
  uint32_t device_major = 0;
  uint32_t device_minor = 0;
  std::map<std::string, std::string> xattrs;  // values decoded from base64
  std::optional<Digest> digest;               // regular files: of the whole file, when given
  std::vector<Chunk> chunks;                  // regular files: in order, covering [0, size)
};

struct Toc {
  std::vector<Entry> entries;  // in the TOC's order; "chunk" entries folded into their file
  // The blob offset where the prefetch landmark's member starts: the files before it are fetched
  // first, in one request. None without a landmark, or with the "no prefetch" one.
  std::optional<uint64_t> prefetch_end;
  bool no_prefetch = false;
};

// The TOC JSON ({"version":1,"entries":[...]}), checked entry by entry: names confined (no
// "..", absolute names made relative), known types, every regular file's chunks contiguous,
// each with a chunkDigest and a member offset before `toc_offset` and not before the previous
// chunk's, a hardlink naming an earlier regular file, no name twice. kInvalidArgument errors
// name the entry ("entries[12] (usr/bin/x): ...").
Result<Toc> parseTocJson(std::string_view json, uint64_t toc_offset);

// The TOC from the blob's bytes [toc_offset, blob_size - kFooterSize) (`toc_member`: a gzip
// member holding the tar entry stargz.index.json), verified against `toc_digest` (the
// descriptor's kTocDigestAnnotation) before it is read.
Result<Toc> readToc(std::string_view toc_member, const Digest& toc_digest, uint64_t toc_offset);

}  // namespace pullagent::puller::estargz
