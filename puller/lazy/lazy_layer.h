#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "base/context.h"
#include "base/error.h"
#include "puller/lazy/estargz_toc.h"
#include "puller/lazy/link_estimate.h"
#include "puller/oci/manifest.h"

namespace pullagent::puller::estargz {

// Bytes [first, last] of the layer's blob, as the registry serves them (RegistryClient::
// fetchRange in the agent). Unverified: the layer checks every chunk before use.
using RangeFetch =
    std::function<Result<std::string>(int64_t first, int64_t last, const Context& ctx)>;

// One eStargz layer read in place (issue 28): its TOC, fetched with two Range requests and
// verified against the descriptor's toc.digest annotation, and its files' bytes, fetched chunk
// by chunk as readers ask for them. Every chunk is checked against its chunkDigest before a
// single byte of it is returned; a reader never sees unverified bytes.
//
// What was fetched is kept in `cache_dir` (the TOC member, and the blob's bytes at their offsets
// in a sparse file with the list of ranges held), so that a restart reads from there instead of
// the network. Those bytes are verified again like fetched ones whenever a chunk is made of
// them; a chunk they fail is fetched again once.
//
// Thread-safe: concurrent readers of one chunk cause one request.
class LazyLayer {
 public:
  // The layer's descriptor must carry kTocDigestAnnotation. The TOC comes from `cache_dir` when
  // an earlier open kept it (verified again), else from the registry: the footer, then the TOC.
  //
  // Who may use a cache: held bytes are served without asking the registry, and a digest is a
  // name, not a proof. A cache directory must therefore be bound to the source that filled it
  // (registry host and repository, as ingest files are), never shared by layer digest alone
  // between sites of different registries or credentials. The cache is held by one process at a
  // time (an flock): a second open fails.
  static Result<std::unique_ptr<LazyLayer>> open(const Descriptor& layer, RangeFetch fetch,
                                                 const std::filesystem::path& cache_dir,
                                                 const Context& ctx);
  ~LazyLayer();
  LazyLayer(const LazyLayer&) = delete;
  LazyLayer& operator=(const LazyLayer&) = delete;

  const Toc& toc() const { return toc_; }
  // The entry at `path` ("bin/sh", no leading slash), or null.
  const Entry* find(std::string_view path) const;

  // Up to `length` bytes of the regular file `entry` from `offset` (fewer at its end).
  Result<std::string> read(const Entry& entry, uint64_t offset, uint64_t length,
                           const Context& ctx);
  // The whole file from held bytes alone, verified like read(), or an error: kUnavailable when
  // a chunk is not held, kDigestMismatch when held bytes fail (left as they are: a read() then
  // fetches them again). Never a request to the registry.
  Result<std::string> readHeld(const Entry& entry);
  // The compressed bytes a chunk's read takes: its gzip member, from the chunk's offset.
  uint64_t memberBytes(const Chunk& chunk) const { return memberEnd(chunk.offset) - chunk.offset; }

  // The prioritized files (before the prefetch landmark), in one request. Nothing without a
  // landmark.
  Status prefetch(const Context& ctx);

  // The background fill (issue 28, item 3): fetches every byte of the blob the cache does not
  // hold yet, lowest offsets first, `piece` bytes per Range request and one request at a time.
  // `between` runs before each request: the caller's chance to wait for foreground pulls to
  // finish (a lower priority than theirs); its error ends the fill. Readers go on meanwhile, and
  // what they fetch is not fetched again. Returns once the copy holds the whole blob. The bytes
  // are not verified here: the whole blob is, when it is read into the content store (readBlob),
  // against the layer's digest.
  static constexpr uint64_t kFillPieceBytes = uint64_t{4} << 20;
  Status fill(const Context& ctx, uint64_t piece = kFillPieceBytes,
              const std::function<Status()>& between = {});
  // Read-ahead for a reader going through the layer in order (a walk reading every file, a big
  // file read through): the fill fetches the bytes just after where such a reader read, so that
  // its next reads find them held instead of waiting a round trip each. Fetches, as the fill,
  // the first bytes no one holds or fetches within kAheadSeconds of the link (kAheadMinBytes to
  // kAheadMaxBytes) after the reader's stream: up to `piece`, and no more than the link carries
  // in kRampSeconds (a reader may wait for it), ending where a member ends. False when no reader
  // read the layer in order within `fresh`, or nothing is missing there.
  // `turn` runs once a request is to be made, before it (the fill's turn after foreground
  // pulls); its error ends the read-ahead.
  Result<bool> fetchAhead(const Context& ctx, uint64_t piece,
                          std::chrono::steady_clock::duration fresh,
                          const std::function<Status()>& turn = {});
  // When a reader last read this layer in order (the host follows the most recent first).
  std::chrono::steady_clock::time_point streamTime() const;
  // When a reader last read this layer at all (pushes and the page cache's hits aside).
  std::chrono::steady_clock::time_point lastRead() const;
  static constexpr double kAheadSeconds = 0.25;
  static constexpr uint64_t kAheadMinBytes = uint64_t{256} << 10;
  static constexpr uint64_t kAheadMaxBytes = uint64_t{32} << 20;
  // A reader's stream: reads each starting at most kStreamBackBytes before the last one started
  // (the same member read on, or readers of one file answered out of order) and at most
  // kStreamGapBytes after the last one ended (files skipped: pushed, or read before); at least
  // kStreamMinReads of them in a row, and kStreamReads in all or kStreamBytes of members read,
  // make it one to read ahead of. A startup's scattered reads, or a database's, do not.
  static constexpr uint64_t kStreamBackBytes = uint64_t{1} << 20;
  static constexpr uint64_t kStreamGapBytes = uint64_t{4} << 20;
  static constexpr int kStreamMinReads = 4;
  static constexpr int kStreamReads = 16;
  static constexpr uint64_t kStreamBytes = uint64_t{2} << 20;

  // Where later fetches go (the newest pull's registry client, credentials and route); a fetch
  // under way finishes with the one it started with.
  void setFetch(RangeFetch fetch);
  // Whether the copy holds every byte of the blob.
  bool complete() const;
  // The held copy of the whole blob, in order, in pieces to `sink` (kInternal unless
  // complete()). Unverified: the caller hashes it (an Ingest of the content store does).
  Status readBlob(const std::function<Status(std::string_view)>& sink) const;
  // The copy proved wrong as a whole (its digest did not match): everything held is dropped and
  // the cache starts over. Readers fetch again what they need; every chunk is still verified.
  void discard();

  struct Stats {
    int64_t requests = 0;         // Range requests for chunks and prefetch
    int64_t bytes_fetched = 0;    // blob bytes they brought
    int64_t chunks_verified = 0;  // chunks checked against their chunkDigest
    int64_t chunk_failures = 0;   // chunks whose bytes did not verify
    int64_t bytes_filled = 0;     // of bytes_fetched, those the background fill brought
  };
  Stats stats() const;
  // Blob bytes held in the cache (fetched now or by an earlier process).
  int64_t bytesHeld() const;
  // How much of its layer the cache at `cache_dir` holds, read from its files alone (another
  // process may be using it; a record it is appending to may end in a cut line): for
  // `pullagent status`. Both 0 when there is no cache with a TOC.
  struct CacheFill {
    int64_t held = 0;
    int64_t size = 0;  // the layer's: up to the TOC's member, its bytes, the footer
  };
  static CacheFill cacheFill(const std::filesystem::path& cache_dir);
  // When a reader last fetched (now, while one fetches): the fill yields to readers.
  std::chrono::steady_clock::time_point lastReaderFetch() const;

  // Bounds: a gzip member fetched in one request, the verified chunks kept in memory.
  static constexpr int64_t kMaxMemberBytes = int64_t{64} << 20;
  static constexpr int64_t kVerifiedCacheBytes = int64_t{16} << 20;
  // A reader's request is widened from the member it needs over the bytes after it (those not
  // held or in flight yet) to about one bandwidth-delay product of the way to the registry, as
  // this layer's fetches measure it (LinkEstimate), within [min, max]. Small files are small
  // gzip members: without it, reading a directory of them costs a round trip per file; with it,
  // a slow link carries few extra bytes and a fast one few round trips. Reads in the layer's
  // order double the window each time, up to max. max 0: never widened.
  static constexpr uint64_t kReaderWindowMin = uint64_t{64} << 10;
  static constexpr uint64_t kReaderWindowMax = uint64_t{4} << 20;
  void setReaderWindow(uint64_t min_bytes, uint64_t max_bytes);

 private:
  LazyLayer(Descriptor layer, RangeFetch fetch, std::filesystem::path cache_dir, Toc toc,
            uint64_t toc_offset);
  Status openCache();
  // The end of the gzip member that starts at `offset`: the next member's start.
  uint64_t memberEnd(uint64_t offset) const;
  // The last member start in (after, at], or `at` when there is none: a request's end moved
  // back to where a member starts, so that what is fetched after it starts with a whole member.
  uint64_t memberStartBefore(uint64_t after, uint64_t at) const;
  bool streamingLocked() const;  // the readers' stream is one to read ahead of
  // The end of a fill or read-ahead request from `from` (neither held nor on its way): up to
  // `piece`, and no more than the link carries in kRampSeconds (a reader may come to wait for
  // it); not over the next held or requested byte; ending where a member ends (a member a
  // little longer than the piece is taken whole), so that a reader's member is in one request.
  uint64_t requestEndLocked(uint64_t from, uint64_t piece) const;
  // A reader's read of the members in blob bytes [begin, end): its stream goes on or starts.
  void noteReadLocked(uint64_t begin, uint64_t end);
  uint64_t aheadBytesLocked() const;
  // kInvalidArgument when blob bytes [begin, end) are more than one member may be
  // (kMaxMemberBytes): what is fetched or read from the copy in one piece.
  Status withinMemberBound(uint64_t begin, uint64_t end) const;
  // Makes blob bytes [begin, end) present in the cache: fetched unless held; one request for
  // them however many readers wait (a fetch under way that covers them serves them all). A
  // reader's request is widened (setReaderWindow); the fill's is not.
  enum class Asker { kReader, kFill };
  Status ensure(uint64_t begin, uint64_t end, const Context& ctx, Asker asker = Asker::kReader);
  void forget(uint64_t begin, uint64_t end);  // held bytes that proved wrong
  void rewriteRecordLocked();                 // the held-ranges record, whole, from held_
  bool heldLocked(uint64_t begin, uint64_t end) const;
  void addHeldLocked(uint64_t begin, uint64_t end);
  void recordHeldLocked(uint64_t begin, uint64_t end);  // held, and written to the record
  Status holdTocMember(const std::string& member);      // the verified TOC, held in the copy
  // A verified chunk: from memory, held bytes, or fetched (unless `held_only`).
  Result<std::shared_ptr<const std::string>> chunkBytes(const Chunk& chunk, const Context& ctx,
                                                        bool held_only = false);
  Result<std::string> readChunks(const Entry& entry, uint64_t offset, uint64_t length,
                                 const Context& ctx, bool held_only);
  Result<std::string> inflateChunk(const Chunk& chunk) const;

  Descriptor layer_;
  RangeFetch fetch_;
  std::filesystem::path cache_dir_;
  Toc toc_;
  uint64_t toc_offset_;
  std::map<std::string, size_t, std::less<>> by_path_;
  std::vector<uint64_t> member_starts_;  // sorted, the TOC's offset last
  int blob_fd_ = -1;                     // the sparse copy of the blob
  int held_fd_ = -1;                     // "begin end" lines: the ranges the copy holds
  int lock_fd_ = -1;                     // flock'd while this object uses the cache

  mutable std::mutex mutex_;
  std::condition_variable in_flight_done_;
  std::map<uint64_t, uint64_t> held_;            // begin -> end, disjoint, merged
  std::multimap<uint64_t, uint64_t> in_flight_;  // ranges being fetched: begin -> end
  int reader_fetches_ = 0;                       // of them, readers'
  std::chrono::steady_clock::time_point last_reader_fetch_{};
  LinkEstimate link_;               // from every fetch's size and time
  uint64_t last_reader_begin_ = 0;  // where the last reader's request began
  uint64_t last_reader_end_ = 0;    // and ended
  uint64_t ramp_ = 1;               // its window's multiple: doubled by reads in order
  static constexpr uint64_t kMaxRamp = 64;
  static constexpr double kRampSeconds = 5;
  uint64_t stream_begin_ = 0;  // where its last read started
  uint64_t stream_end_ = 0;    // where a reader's stream of reads in order got to
  int stream_reads_ = 0;       // its reads
  uint64_t stream_bytes_ = 0;  // the member bytes they read
  std::chrono::steady_clock::time_point stream_time_{};  // its last read
  std::chrono::steady_clock::time_point last_read_{};    // in order or not
  uint64_t window_min_ = kReaderWindowMin;
  uint64_t window_max_ = kReaderWindowMax;
  uint64_t generation_ = 0;  // discard()s so far: a fetch across one is not held
  // Verified chunks, most recently used first, keyed by (member offset, inner offset).
  using ChunkKey = std::pair<uint64_t, uint64_t>;
  std::list<std::pair<ChunkKey, std::shared_ptr<const std::string>>> lru_;
  std::map<ChunkKey, decltype(lru_)::iterator> lru_index_;
  // The verified chunk from memory (made the most recently used), or null.
  std::shared_ptr<const std::string> verifiedLocked(const ChunkKey& key);
  std::set<ChunkKey> inflating_;  // chunks a reader is inflating and checking now
  std::condition_variable chunk_inflated_;
  int64_t lru_bytes_ = 0;
  Stats stats_;
};

}  // namespace pullagent::puller::estargz
