#pragma once

#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>

#include "base/context.h"
#include "base/error.h"
#include "puller/oci/digest.h"
#include "puller/oci/sha256.h"

namespace pullagent::puller {

class ContentStore;

// One blob being written: bytes are hashed as they are appended to ingest/<hex>, and the blob
// becomes visible under blobs/sha256/<hex> only through commit(), after its size and digest
// were checked. A partial ingest file stays for the next attempt (or the next process) to
// resume from.
class Ingest {
 public:
  ~Ingest();
  Ingest(const Ingest&) = delete;
  Ingest& operator=(const Ingest&) = delete;

  int64_t offset() const { return offset_; }
  int64_t expectedSize() const { return expected_size_; }
  Status write(std::string_view bytes);
  // Bytes of the blob at `position`, past the verified prefix, written by one of several
  // connections fetching ranges of it (RegistryClient): not hashed, not part of offset(), until
  // adopt() reads them back in order. Until then they are only scratch: an Ingest that goes
  // without adopting them cuts its file back to offset(), so that what stays for a resume is
  // always a prefix of the blob as it was received.
  Status writeAt(int64_t position, std::string_view bytes);
  // The next `length` bytes after offset(), written by writeAt, join the prefix: read back,
  // hashed, and offset() moves past them.
  Status adopt(int64_t length);
  // Starts over from byte 0 (the partial data cannot be trusted or continued).
  Status restart();
  // Verifies size and digest, fsyncs, renames into place (or, when another source's copy was
  // stored meanwhile, drops its own). On a mismatch the ingest file is deleted (its bytes are
  // wrong) and kDigestMismatch returned. `verified` runs once the bytes verified and before the
  // blob is visible or the ingest file is gone: what it records about the blob (its source) is
  // there before any other pull can see the blob or take the ingest's place.
  Status commit(const std::function<void()>& verified = {});

 private:
  friend class ContentStore;
  Ingest(ContentStore& store, Digest digest, int64_t expected_size, int fd,
         std::filesystem::path path, std::string key);

  ContentStore& store_;
  Digest digest_;
  int64_t expected_size_;
  int fd_;
  std::filesystem::path path_;
  std::string key_;  // the ingest file's name: digest hex and source
  int64_t offset_ = 0;
  Sha256 hasher_;
  bool committed_ = false;
  bool dropped_ = false;     // its file was removed (disk full): nothing more is written or kept
  int64_t written_end_ = 0;  // the end of the farthest writeAt (0: none past offset_)
  // Once bytes are written ahead, <ingest>.prefix records how much of the file is the prefix
  // (rewritten every few MiB of it), for a resume after a process that was killed.
  bool recording_ = false;
  int64_t recorded_ = 0;

  std::filesystem::path prefixRecordPath() const;
  Status recordPrefix();
  Status writeRecord(int64_t prefix);
  void dropRecord();            // by name: only while the ingest file's name is still this ingest's
  Status keepRecordedPrefix();  // a resume: cut the file to what the record names

  Status fail(Status status);  // a write failed: a full disk drops the ingest

  Status dropped() const;
};

// A content-addressed blob store laid out as an OCI image layout's blobs/ directory, with an
// ingest/ directory beside it for unverified bytes.
class ContentStore {
 public:
  static Result<std::unique_ptr<ContentStore>> open(const std::filesystem::path& root);
  // Where a store rooted at `root` keeps its committed blobs, one file per sha256 hex digest.
  static std::filesystem::path blobsDir(const std::filesystem::path& root) {
    return root / "blobs" / "sha256";
  }

  const std::filesystem::path& root() const { return root_; }
  std::filesystem::path blobPath(const Digest& digest) const;
  // True when the verified blob is present with this size.
  bool contains(const Digest& digest, int64_t size) const;
  Result<std::string> readBlob(const Digest& digest, int64_t max_size) const;
  // Stores bytes already in memory (manifests); they must hash to `digest`.
  Status putBlob(const Digest& digest, std::string_view bytes, const Context& ctx);

  // Opens the ingest for `digest` from `source` (the registry and repository the bytes come
  // from), continuing a partial one from the same source (re-hashing what it holds). Partial
  // bytes are bound to their source: another registry's leftovers are never resumed, and a
  // download never waits for another source's (a stalling registry cannot hold up an honest
  // one that serves the same blob); whichever verified copy commits first is kept. One ingest
  // per digest and source at a time: within this process a second caller waits; across
  // processes an flock on the ingest file does the same. Returns null when, after waiting, the
  // blob turns out to be stored already, unless `even_if_stored`: a pull that must see the
  // bytes come from its own registry (the stored copy came from another) downloads and
  // verifies them anyway, and the commit then keeps the copy in place.
  Result<std::unique_ptr<Ingest>> beginIngest(const Digest& digest, int64_t expected_size,
                                              std::string_view source, const Context& ctx,
                                              bool even_if_stored = false);
  // Where the partial bytes of `digest` from `source` live.
  std::filesystem::path ingestPath(const Digest& digest, std::string_view source) const;

 private:
  friend class Ingest;
  explicit ContentStore(std::filesystem::path root) : root_(std::move(root)) {}
  void release(const std::string& key);

  std::filesystem::path root_;
  std::mutex mutex_;
  std::condition_variable_any released_;
  std::set<std::string> active_;
};

}  // namespace pullagent::puller
