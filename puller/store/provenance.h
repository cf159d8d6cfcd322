#pragma once

#include <compare>
#include <cstddef>
#include <filesystem>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "base/error.h"
#include "puller/oci/digest.h"

namespace pullagent::puller {

// Where a blob's bytes were served from and verified: the registry as the image reference names
// it (mirrors count for the registry they were asked for, as `?ns=` says) and the repository.
struct BlobSource {
  std::string registry;
  std::string repository;
  auto operator<=>(const BlobSource&) const = default;
  std::string str() const { return registry + "/" + repository; }
};

// What the agent itself established about one blob: the sources that served it to a pull whose
// credentials they accepted (or that proved they hold it), and, once the agent decompressed it
// and verified the result, the diff_id it decompresses to. A digest alone proves nothing: only
// these records let a pull reuse a stored blob, a layer snapshot or a published image.
struct ProvenanceRecord {
  Digest digest;
  std::optional<Digest> diff_id;  // as this agent computed it, never as a config claims it
  std::set<BlobSource> sources;

  bool servedBy(const BlobSource& source) const { return sources.count(source) != 0; }
  // Some repository of `registry` served it.
  bool servedByRegistry(const std::string& registry) const;
};

// Limits a record is read within (it is read as hostile: a state dir may hold anything).
// 256 sources of the longest names (255 + 255 characters) serialize to about 140 kB: a record
// this agent writes always reads back.
inline constexpr size_t kMaxProvenanceRecordBytes = 256 * 1024;
inline constexpr size_t kMaxProvenanceSources = 256;
// One registry's repositories in one record: a tenant adding sources for a shared public blob
// from many repositories of its own registry evicts only that registry's entries.
inline constexpr size_t kMaxProvenanceSourcesPerRegistry = 32;

// The record's JSON: {"digest","diffId"?,"sources":[{"registry","repository"}]}. Anything else
// (another blob's digest, a malformed source, too many of them) is an error: no proof.
Result<ProvenanceRecord> parseProvenanceRecord(std::string_view text, const Digest& expected);
std::string serializeProvenanceRecord(const ProvenanceRecord& record);
// A registry host[:port] and a repository path as a reference spells them.
bool validBlobSource(const BlobSource& source);

// The records of one content store, one file per blob: <dir>/<hex>.json, written atomically.
// A record that is missing, unreadable or corrupt reads as "no proof" (logged), never as proof.
// Updates hold an flock on <dir>/.lock (and a mutex in this process): two pulls adding sources
// to one blob keep both. No secret is ever part of a record.
class ProvenanceStore {
 public:
  explicit ProvenanceStore(std::filesystem::path dir) : dir_(std::move(dir)) {}

  const std::filesystem::path& dir() const { return dir_; }
  // Creates the directory (0700) if missing.
  Status prepare() const;

  std::optional<ProvenanceRecord> read(const Digest& digest) const;
  Status addSource(const Digest& digest, const BlobSource& source);
  Status recordDiffId(const Digest& blob, const Digest& diff_id);

  // The blobs with a record file, by digest (names that are not digests are skipped).
  Result<std::set<Digest>> list() const;
  Status remove(const Digest& digest);

 private:
  std::filesystem::path pathOf(const Digest& digest) const;
  // Read, change, write back under the lock. A record that is missing or malformed starts anew
  // (it proved nothing); one that could not be read (EIO, EMFILE) fails the update rather than
  // lose the sources it holds.
  template <typename Change>
  Status update(const Digest& digest, Change change);

  std::filesystem::path dir_;
  std::mutex mutex_;
};

}  // namespace pullagent::puller
