#include "puller/lazy/lazy_layer.h"

#include <fcntl.h>
#include <isa-l/igzip_lib.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>

#include "base/atomic_file.h"
#include "base/bounded_read.h"
#include "base/confined_root.h"
#include "base/unique_fd.h"
#include "puller/oci/sha256.h"

namespace pullagent::puller::estargz {
namespace fs = std::filesystem;
namespace {

// The held-ranges record holds at most this many lines; past it the cache starts over (a layer
// has far fewer members than this, each line is one fetch).
constexpr size_t kMaxHeldRecord = 4 * 1024 * 1024;

Status pwriteAll(int fd, std::string_view bytes, uint64_t at, const fs::path& path) {
  while (!bytes.empty()) {
    ssize_t n = ::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(at));
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return errnoError(errno, "write", path);
    }
    bytes.remove_prefix(static_cast<size_t>(n));
    at += static_cast<uint64_t>(n);
  }
  return {};
}

Result<std::string> preadAll(int fd, uint64_t at, uint64_t length, const fs::path& path) {
  std::string out(length, '\0');
  size_t done = 0;
  while (done < length) {
    ssize_t n = ::pread(fd, out.data() + done, length - done, static_cast<off_t>(at + done));
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return errnoError(n < 0 ? errno : EIO, "read", path);
    done += static_cast<size_t>(n);
  }
  return out;
}

// A chunk's bytes: its member inflated, `inner_offset` bytes skipped, `size` kept. A member
// that ends before that is wrong (the chunk will not verify anyway; say why instead).
// ISA-L's igzip inflates about twice as fast as zlib (as for whole layers, layer_stream.cpp):
// every chunk a reader asks for is inflated on its way, so this is a reader's time.
Result<std::string> inflateSlice(std::string_view member, const Chunk& chunk) {
  if (member.size() > UINT32_MAX)
    return makeError(ErrorCode::kInvalidArgument, "a gzip member over 4 GiB");
  // Not zeroed (new without braces): it is large, and isal_inflate_init sets what a member
  // needs; zeroing it for each small file's chunk would cost more than its inflation.
  const std::unique_ptr<inflate_state> state(new inflate_state);
  isal_inflate_init(state.get());
  state->crc_flag = ISAL_GZIP;
  state->next_in = reinterpret_cast<uint8_t*>(const_cast<char*>(member.data()));
  state->avail_in = static_cast<uint32_t>(member.size());
  // The bytes before the chunk go to a scratch buffer: only the chunk itself is allocated (the
  // caller bounds both it and the skip). Most chunks start their member: no scratch then (it
  // would be zeroed for every small file's chunk).
  std::string scratch(chunk.inner_offset > 0 ? 64 * 1024 : 0, '\0');
  std::string out(chunk.size, '\0');
  // Inflates into [at, at + room): the bytes it made, or nothing once nothing more comes (an
  // error, or the member's end).
  auto inflateInto = [&](char* at, uint32_t room) -> std::optional<uint32_t> {
    state->next_out = reinterpret_cast<uint8_t*>(at);
    state->avail_out = room;
    const int rc = isal_inflate(state.get());
    const uint32_t produced = room - state->avail_out;
    if (rc != ISAL_DECOMP_OK || produced == 0)
      return std::nullopt;
    return produced;
  };
  uint64_t skip = chunk.inner_offset;
  while (skip > 0) {
    auto produced = inflateInto(scratch.data(),
                                static_cast<uint32_t>(std::min<uint64_t>(skip, scratch.size())));
    if (!produced)
      break;
    skip -= *produced;
  }
  uint64_t filled = 0;
  while (skip == 0 && filled < out.size()) {
    auto produced = inflateInto(out.data() + filled, static_cast<uint32_t>(out.size() - filled));
    if (!produced)
      break;
    filled += *produced;
  }
  if (skip != 0 || filled != out.size()) {
    return makeError(ErrorCode::kDigestMismatch,
                     "the gzip member at " + std::to_string(chunk.offset) +
                         " does not inflate to the chunk its TOC entry names");
  }
  return out;
}

}  // namespace

LazyLayer::LazyLayer(Descriptor layer, RangeFetch fetch, fs::path cache_dir, Toc toc,
                     uint64_t toc_offset)
    : layer_(std::move(layer)),
      fetch_(std::move(fetch)),
      cache_dir_(std::move(cache_dir)),
      toc_(std::move(toc)),
      toc_offset_(toc_offset) {
  for (size_t i = 0; i < toc_.entries.size(); ++i) {
    const Entry& entry = toc_.entries[i];
    by_path_.emplace(ConfinedRoot::join(entry.path, entry.path.size()), i);
    for (const auto& chunk : entry.chunks)
      member_starts_.push_back(chunk.offset);
  }
  member_starts_.push_back(toc_offset_);
  std::sort(member_starts_.begin(), member_starts_.end());
  member_starts_.erase(std::unique(member_starts_.begin(), member_starts_.end()),
                       member_starts_.end());
}

LazyLayer::~LazyLayer() {
  for (int fd : {blob_fd_, held_fd_, lock_fd_}) {
    if (fd >= 0)
      ::close(fd);
  }
}

Result<std::unique_ptr<LazyLayer>> LazyLayer::open(const Descriptor& layer, RangeFetch fetch,
                                                   const fs::path& cache_dir, const Context& ctx) {
  const std::string what = "eStargz layer " + layer.digest.str();
  auto annotation = layer.annotations.find(std::string(kTocDigestAnnotation));
  if (annotation == layer.annotations.end())
    return makeError(ErrorCode::kInvalidArgument, what + " has no TOC digest annotation");
  auto toc_digest = Digest::parse(annotation->second);
  if (!toc_digest)
    return toc_digest.error().context(what + ": its TOC digest annotation");
  if (layer.size < static_cast<int64_t>(kFooterSize))
    return makeError(ErrorCode::kInvalidArgument, what + " is smaller than its footer");
  std::error_code error;
  fs::create_directories(cache_dir, error);
  if (error)
    return errnoError(error.value(), "create", cache_dir);

  // The TOC member, as kept by an earlier open or fetched now; either way verified by readToc.
  const fs::path toc_path = cache_dir / "toc";
  std::optional<std::pair<uint64_t, std::string>> kept;
  if (auto text = readRegularFile(toc_path, kMaxTocMemberBytes + 32)) {
    const auto newline = text->find('\n');
    uint64_t offset = 0;
    if (newline != std::string::npos &&
        std::from_chars(text->data(), text->data() + newline, offset).ec == std::errc())
      kept.emplace(offset, text->substr(newline + 1));
  }
  Result<Toc> toc = makeError(ErrorCode::kNotFound, "no TOC");
  uint64_t toc_offset = 0;
  LinkEstimate link;  // the footer's and TOC's fetches measure the way first
  std::string toc_member;
  if (kept) {
    toc = readToc(kept->second, *toc_digest, kept->first);
    toc_offset = kept->first;
    if (toc)
      toc_member = std::move(kept->second);
  }
  if (!toc) {
    const auto size = static_cast<uint64_t>(layer.size);
    auto timed = std::chrono::steady_clock::now();
    ASSIGN_OR_RETURN(auto footer,
                     fetch(layer.size - static_cast<int64_t>(kFooterSize), layer.size - 1, ctx));
    std::chrono::duration<double> took = std::chrono::steady_clock::now() - timed;
    link.observe(footer.size(), took.count());
    ASSIGN_OR_RETURN(toc_offset, parseFooter(footer, size));
    const uint64_t member_size = size - kFooterSize - toc_offset;
    if (member_size > kMaxTocMemberBytes) {
      return makeError(
          ErrorCode::kInvalidArgument,
          what + ": its TOC member of " + std::to_string(member_size) + " bytes is over the bound");
    }
    timed = std::chrono::steady_clock::now();
    ASSIGN_OR_RETURN(auto member, fetch(static_cast<int64_t>(toc_offset),
                                        static_cast<int64_t>(size - kFooterSize) - 1, ctx));
    took = std::chrono::steady_clock::now() - timed;
    link.observe(member.size(), took.count());
    toc = readToc(member, *toc_digest, toc_offset);
    if (!toc)
      return toc.error().context(what);
    RETURN_IF_ERROR(writeFileAtomic(toc_path, std::to_string(toc_offset) + "\n" + member));
    toc_member = std::move(member);
  }
  std::unique_ptr<LazyLayer> opened(
      new LazyLayer(layer, std::move(fetch), cache_dir, std::move(toc.value()), toc_offset));
  RETURN_IF_ERROR(opened->openCache());
  opened->link_ = link;
  RETURN_IF_ERROR(opened->holdTocMember(toc_member));
  return opened;
}

Status LazyLayer::openCache() {
  const fs::path blob_path = cache_dir_ / "blob";
  const fs::path held_path = cache_dir_ / "held";
  const fs::path lock_path = cache_dir_ / "lock";
  // One process at a time: two would write the same sparse copy and rewrite each other's
  // record.
  lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (lock_fd_ < 0)
    return errnoError(errno, "open", lock_path);
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    return makeError(ErrorCode::kUnavailable, "eStargz layer " + layer_.digest.str() +
                                                  ": its cache " + cache_dir_.string() +
                                                  " is in use by another process");
  }
  blob_fd_ = ::open(blob_path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (blob_fd_ < 0)
    return errnoError(errno, "open", blob_path);
  // What an earlier process held: ranges inside the blob, or nothing at all (a record that
  // cannot be read whole, or a line that is not two numbers, starts the cache over).
  bool usable = true;
  auto text = readRegularFile(held_path, kMaxHeldRecord);
  if (!text && text.error().code != ErrorCode::kNotFound)
    usable = false;
  std::string_view rest = text ? std::string_view(*text) : std::string_view();
  auto number = [](std::string_view digits, uint64_t& out) {
    auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), out);
    return error == std::errc() && end == digits.data() + digits.size();
  };
  while (!rest.empty() && usable) {
    const auto newline = rest.find('\n');
    if (newline == std::string_view::npos)
      break;  // a line cut by a kill: its range was not recorded
    const std::string_view line = rest.substr(0, newline);
    rest.remove_prefix(newline + 1);
    const auto space = line.find(' ');
    uint64_t begin = 0;
    uint64_t end = 0;
    usable = space != std::string_view::npos && number(line.substr(0, space), begin) &&
             number(line.substr(space + 1), end) && begin < end &&
             end <= static_cast<uint64_t>(layer_.size);
    if (usable)
      addHeldLocked(begin, end);
  }
  if (!usable) {
    held_.clear();
    if (::ftruncate(blob_fd_, 0) != 0)
      return errnoError(errno, "truncate", blob_path);
  }
  // Written again whole, without a line a kill may have cut: what is appended next starts on
  // a line of its own.
  held_fd_ = ::open(held_path.c_str(),
                    O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (held_fd_ < 0)
    return errnoError(errno, "open", held_path);
  std::string record;
  for (const auto& [from, to] : held_)
    record += std::to_string(from) + " " + std::to_string(to) + "\n";
  if (::write(held_fd_, record.data(), record.size()) != static_cast<ssize_t>(record.size()))
    return errnoError(errno, "write", held_path);
  return {};
}

const Entry* LazyLayer::find(std::string_view path) const {
  auto it = by_path_.find(path);
  return it == by_path_.end() ? nullptr : &toc_.entries[it->second];
}

uint64_t LazyLayer::memberEnd(uint64_t offset) const {
  auto it = std::upper_bound(member_starts_.begin(), member_starts_.end(), offset);
  return it == member_starts_.end() ? toc_offset_ : *it;
}

uint64_t LazyLayer::memberStartBefore(uint64_t after, uint64_t at) const {
  auto it = std::upper_bound(member_starts_.begin(), member_starts_.end(), at);
  if (it == member_starts_.begin() || *std::prev(it) <= after)
    return at;
  return *std::prev(it);
}

bool LazyLayer::heldLocked(uint64_t begin, uint64_t end) const {
  auto it = held_.upper_bound(begin);
  if (it == held_.begin())
    return false;
  --it;
  return it->first <= begin && it->second >= end;
}

void LazyLayer::addHeldLocked(uint64_t begin, uint64_t end) {
  // Merge with every range it touches.
  auto it = held_.upper_bound(begin);
  if (it != held_.begin() && std::prev(it)->second >= begin)
    --it;
  while (it != held_.end() && it->first <= end) {
    begin = std::min(begin, it->first);
    end = std::max(end, it->second);
    it = held_.erase(it);
  }
  held_.emplace(begin, end);
}

void LazyLayer::forget(uint64_t begin, uint64_t end) {
  std::lock_guard lock(mutex_);
  std::map<uint64_t, uint64_t> kept;
  for (const auto& [from, to] : held_) {
    if (to <= begin || from >= end) {
      kept.emplace(from, to);
      continue;
    }
    if (from < begin)
      kept.emplace(from, begin);
    if (to > end)
      kept.emplace(end, to);
  }
  held_ = std::move(kept);
  // The record is rewritten whole: a restart must not take the wrong bytes for held ones.
  rewriteRecordLocked();
}

void LazyLayer::rewriteRecordLocked() {
  std::string record;
  for (const auto& [from, to] : held_)
    record += std::to_string(from) + " " + std::to_string(to) + "\n";
  if (::ftruncate(held_fd_, 0) != 0 ||
      ::write(held_fd_, record.data(), record.size()) != static_cast<ssize_t>(record.size()))
    spdlog::warn("{}: the cache's record could not be rewritten", layer_.digest.str());
}

Status LazyLayer::withinMemberBound(uint64_t begin, uint64_t end) const {
  if (end - begin > static_cast<uint64_t>(kMaxMemberBytes)) {
    return makeError(ErrorCode::kInvalidArgument, "eStargz layer " + layer_.digest.str() +
                                                      ": a gzip member of " +
                                                      std::to_string(end - begin) + " bytes at " +
                                                      std::to_string(begin) + " is over the bound");
  }
  return {};
}

Status LazyLayer::ensure(uint64_t begin, uint64_t end, const Context& ctx, Asker asker) {
  RETURN_IF_ERROR(withinMemberBound(begin, end));
  uint64_t generation = 0;
  std::multimap<uint64_t, uint64_t>::iterator mine;
  {
    std::unique_lock lock(mutex_);
    // A fetch under way that has this range's first byte is waited for: it brings this range
    // or its head (trimmed below once held), and the rest is asked for after it. Not waiting
    // would fetch its part of the range a second time.
    auto covered = [&] {
      for (auto it = in_flight_.begin(); it != in_flight_.end() && it->first <= begin; ++it) {
        if (it->second > begin)
          return true;
      }
      return false;
    };
    while (true) {
      if (heldLocked(begin, end))
        return {};
      // Only what is missing is asked for: a held head or tail (a member a reader's widened
      // request took part of) is not fetched again.
      if (auto it = held_.upper_bound(begin); it != held_.begin() && std::prev(it)->second > begin)
        begin = std::prev(it)->second;
      if (auto it = held_.lower_bound(end);
          it != held_.begin() && std::prev(it)->second >= end && std::prev(it)->first > begin)
        end = std::prev(it)->first;
      if (!covered())
        break;
      // Another fetch under way brings these bytes: they serve this one too.
      in_flight_done_.wait_for(lock, std::chrono::milliseconds(200));
      RETURN_IF_ERROR(ctx.check());
    }
    if (asker == Asker::kReader) {
      // Widened over the bytes after it no one holds or fetches yet (the next small files).
      // A reader going on where its last request ended reads the layer in order (a directory
      // walked, a big file read through): its window doubles each time, up to the most, as the
      // kernel's readahead does; any other read starts again from one round trip's worth.
      uint64_t window = link_.bytesPerRoundTrip(window_min_, window_max_);
      const bool in_order = begin >= last_reader_begin_ && begin <= last_reader_end_ + window;
      ramp_ = in_order ? std::min<uint64_t>(ramp_ * 2, kMaxRamp) : 1;
      // A ramped request takes no longer than a few seconds at the measured rate: on a slow
      // link a 4 MiB request would outlast a reader's timeout.
      window = std::min(window * ramp_,
                        std::max(window, std::min(window_max_, link_.bytesIn(kRampSeconds))));
      uint64_t widened = std::max(
          end,
          memberStartBefore(end, std::min(begin + window, static_cast<uint64_t>(layer_.size))));
      if (auto next = held_.lower_bound(end); next != held_.end())
        widened = std::min(widened, std::max(end, next->first));
      if (auto next = held_.lower_bound(end);
          next != held_.begin() && std::prev(next)->second > end)
        widened = end;  // the bytes right after it are held already
      for (const auto& [from, to] : in_flight_) {
        if (from >= end)
          widened = std::min(widened, from);
      }
      end = widened;
      last_reader_begin_ = begin;
      last_reader_end_ = end;
    }
    mine = in_flight_.emplace(begin, end);
    if (asker == Asker::kReader) {
      ++reader_fetches_;
      last_reader_fetch_ = std::chrono::steady_clock::now();
    }
    generation = generation_;
  }
  // Whatever happens below (an exception included), the range is no longer in flight after.
  struct InFlight {
    LazyLayer& layer;
    std::multimap<uint64_t, uint64_t>::iterator range;
    bool reader;
    ~InFlight() {
      std::lock_guard lock(layer.mutex_);
      layer.in_flight_.erase(range);
      if (reader) {
        --layer.reader_fetches_;
        layer.last_reader_fetch_ = std::chrono::steady_clock::now();
      }
      layer.in_flight_done_.notify_all();
    }
  } in_flight{*this, mine, asker == Asker::kReader};
  Status status;
  RangeFetch fetch;
  {
    // A copy: setFetch() may replace it meanwhile, and the copy keeps what it uses alive.
    std::lock_guard lock(mutex_);
    fetch = fetch_;
  }
  const auto started = std::chrono::steady_clock::now();
  auto bytes = fetch(static_cast<int64_t>(begin), static_cast<int64_t>(end) - 1, ctx);
  const std::chrono::duration<double> took = std::chrono::steady_clock::now() - started;
  if (!bytes) {
    status = bytes.error();
  } else if (bytes->size() != end - begin) {
    status = makeError(ErrorCode::kProtocol, "a range answer of the wrong length");
  } else {
    status = pwriteAll(blob_fd_, *bytes, begin, cache_dir_ / "blob");
  }
  std::lock_guard lock(mutex_);
  ++stats_.requests;
  if (!status) {
    if (asker == Asker::kReader)
      ramp_ = 1;  // the next request starts small again
    return status;
  }
  link_.observe(end - begin, took.count());
  stats_.bytes_fetched += static_cast<int64_t>(end - begin);
  if (asker == Asker::kFill)
    stats_.bytes_filled += static_cast<int64_t>(end - begin);
  // A discard() meanwhile cut the copy, perhaps after these bytes were written: they are not
  // counted as held (the caller's chunk check decides about what it reads now).
  if (generation != generation_)
    return {};
  recordHeldLocked(begin, end);
  return {};
}

void LazyLayer::recordHeldLocked(uint64_t begin, uint64_t end) {
  addHeldLocked(begin, end);
  const std::string line = std::to_string(begin) + " " + std::to_string(end) + "\n";
  if (::write(held_fd_, line.data(), line.size()) != static_cast<ssize_t>(line.size()))
    spdlog::warn("{}: the cache's record could not be written", layer_.digest.str());
}

Status LazyLayer::holdTocMember(const std::string& member) {
  // The TOC's member, verified against its digest: the fill need not fetch it again.
  // Only where the footer says it is: the kept offset is not covered by the TOC's digest.
  const auto size = static_cast<uint64_t>(layer_.size);
  if (size < kFooterSize || toc_offset_ > size - kFooterSize ||
      member.size() != size - kFooterSize - toc_offset_)
    return {};
  const uint64_t end = toc_offset_ + member.size();
  RETURN_IF_ERROR(pwriteAll(blob_fd_, member, toc_offset_, cache_dir_ / "blob"));
  std::lock_guard lock(mutex_);
  if (!heldLocked(toc_offset_, end))
    recordHeldLocked(toc_offset_, end);
  return {};
}

Result<std::string> LazyLayer::inflateChunk(const Chunk& chunk) const {
  const uint64_t end = memberEnd(chunk.offset);
  ASSIGN_OR_RETURN(auto member,
                   preadAll(blob_fd_, chunk.offset, end - chunk.offset, cache_dir_ / "blob"));
  return inflateSlice(member, chunk);
}

std::shared_ptr<const std::string> LazyLayer::verifiedLocked(const ChunkKey& key) {
  auto found = lru_index_.find(key);
  if (found == lru_index_.end())
    return nullptr;
  lru_.splice(lru_.begin(), lru_, found->second);  // most recently used
  return found->second->second;
}

Result<std::shared_ptr<const std::string>> LazyLayer::chunkBytes(const Chunk& chunk,
                                                                 const Context& ctx,
                                                                 bool held_only) {
  const auto key = std::make_pair(chunk.offset, chunk.inner_offset);
  {
    std::lock_guard lock(mutex_);
    if (auto cached = verifiedLocked(key))
      return cached;
  }
  // A chunk is held in memory whole, and what its member inflates to before it is inflated
  // again at every read of it: both bounded (a TOC may name any size and inner offset).
  if (chunk.size > static_cast<uint64_t>(kMaxMemberBytes) ||
      chunk.inner_offset > static_cast<uint64_t>(kMaxMemberBytes)) {
    return makeError(ErrorCode::kInvalidArgument,
                     "eStargz layer " + layer_.digest.str() + ": a chunk of " +
                         std::to_string(chunk.size) + " bytes at inner offset " +
                         std::to_string(chunk.inner_offset) + " is over the bound");
  }
  const uint64_t end = memberEnd(chunk.offset);
  // Bounded before it is read from the copy too, held or not (a held-only read fetches
  // nothing): the member runs to the next one the TOC names, which may be gigabytes away.
  RETURN_IF_ERROR(withinMemberBound(chunk.offset, end));
  // Bytes held from before are checked like fetched ones; wrong ones are fetched once more.
  for (int attempt = 0;; ++attempt) {
    if (held_only) {
      std::lock_guard lock(mutex_);
      if (!heldLocked(chunk.offset, end))
        return makeError(ErrorCode::kUnavailable,
                         "the chunk at " + std::to_string(chunk.offset) + " is not held");
    } else {
      RETURN_IF_ERROR(ensure(chunk.offset, end, ctx));
    }
    // One inflation of a chunk however many readers want it at once (the kernel sends a big
    // file's readahead while its first READ is served, and each READ of a 4 MiB chunk would
    // inflate and hash all of it): the others wait for it and take it from memory. A push
    // (held-only) neither waits nor is waited for: what it inflates is not kept.
    struct Inflating {
      LazyLayer* layer = nullptr;
      ChunkKey key;
      ~Inflating() {
        if (layer == nullptr)
          return;
        std::lock_guard lock(layer->mutex_);
        layer->inflating_.erase(key);
        layer->chunk_inflated_.notify_all();
      }
    } inflating;
    if (!held_only) {
      std::unique_lock lock(mutex_);
      while (true) {
        if (auto cached = verifiedLocked(key))
          return cached;
        if (inflating_.count(key) == 0) {
          // Held bytes another reader's inflation found bad were forgotten meanwhile: they are
          // fetched again before this reader inflates them (not counted as its attempt).
          if (!heldLocked(chunk.offset, end)) {
            lock.unlock();
            RETURN_IF_ERROR(ensure(chunk.offset, end, ctx));
            lock.lock();
            continue;
          }
          inflating_.insert(key);
          break;
        }
        chunk_inflated_.wait_for(lock, std::chrono::milliseconds(200));
        RETURN_IF_ERROR(ctx.check());
      }
      inflating.layer = this;
      inflating.key = key;
    }
    auto bytes = inflateChunk(chunk);
    const bool verified = bytes && Sha256::of(*bytes) == chunk.digest;
    {
      std::lock_guard lock(mutex_);
      ++stats_.chunks_verified;
      if (verified) {
        auto shared = std::make_shared<const std::string>(std::move(bytes.value()));
        // Not kept for a held-only read (a push): the kernel has those bytes in its page cache
        // now, and readers of big files need the room.
        if (!held_only && lru_index_.count(key) == 0) {  // another reader may have verified it
          lru_.emplace_front(key, shared);
          lru_index_.emplace(key, lru_.begin());
          lru_bytes_ += static_cast<int64_t>(shared->size());
        }
        while (lru_bytes_ > kVerifiedCacheBytes && lru_.size() > 1) {
          lru_bytes_ -= static_cast<int64_t>(lru_.back().second->size());
          lru_index_.erase(lru_.back().first);
          lru_.pop_back();
        }
        return shared;
      }
      ++stats_.chunk_failures;
    }
    if (attempt == 1 || held_only) {
      return makeError(ErrorCode::kDigestMismatch,
                       "eStargz layer " + layer_.digest.str() + ": the chunk at " +
                           std::to_string(chunk.offset) + " does not match its chunkDigest" +
                           (bytes ? "" : " (" + bytes.error().message + ")"));
    }
    spdlog::warn("eStargz layer {}: the chunk at {} did not verify; fetching it again",
                 layer_.digest.str(), chunk.offset);
    forget(chunk.offset, end);
  }
}

Result<std::string> LazyLayer::read(const Entry& entry, uint64_t offset, uint64_t length,
                                    const Context& ctx) {
  return readChunks(entry, offset, length, ctx, false);
}

Result<std::string> LazyLayer::readHeld(const Entry& entry) {
  return readChunks(entry, 0, entry.size, Context{}, true);  // no network: nothing to wait for
}

Result<std::string> LazyLayer::readChunks(const Entry& entry, uint64_t offset, uint64_t length,
                                          const Context& ctx, bool held_only) {
  if (entry.type != EntryType::kRegular)
    return makeError(ErrorCode::kInvalidArgument, "not a regular file");
  if (offset >= entry.size || length == 0)
    return std::string();
  const uint64_t end = offset + std::min(length, entry.size - offset);
  std::string out;
  out.reserve(end - offset);
  // The first chunk that ends after `offset` (chunks are contiguous from 0, in order).
  auto it = std::upper_bound(
      entry.chunks.begin(), entry.chunks.end(), offset,
      [](uint64_t at, const Chunk& chunk) { return at < chunk.file_offset + chunk.size; });
  if (!held_only && it != entry.chunks.end()) {
    // The members this read takes, for the fill to read ahead of a reader going on in order.
    auto last = it;
    while (std::next(last) != entry.chunks.end() && std::next(last)->file_offset < end)
      ++last;
    std::lock_guard lock(mutex_);
    noteReadLocked(std::min(it->offset, last->offset),
                   memberEnd(std::max(it->offset, last->offset)));
  }
  for (; it != entry.chunks.end() && it->file_offset < end; ++it) {
    ASSIGN_OR_RETURN(auto bytes, chunkBytes(*it, ctx, held_only));
    const uint64_t from = std::max(offset, it->file_offset) - it->file_offset;
    const uint64_t to = std::min(end, it->file_offset + it->size) - it->file_offset;
    out.append(*bytes, from, to - from);
  }
  return out;
}

Status LazyLayer::prefetch(const Context& ctx) {
  if (!toc_.prefetch_end || *toc_.prefetch_end == 0)
    return {};
  // In pieces no larger than one request may be; usually one.
  for (uint64_t at = 0; at < *toc_.prefetch_end;) {
    const uint64_t end = std::min<uint64_t>(*toc_.prefetch_end, at + kMaxMemberBytes);
    RETURN_IF_ERROR(ensure(at, end, ctx));
    at = end;
  }
  return {};
}

Status LazyLayer::fill(const Context& ctx, uint64_t piece, const std::function<Status()>& between) {
  const auto size = static_cast<uint64_t>(layer_.size);
  piece = std::clamp<uint64_t>(piece, 1, static_cast<uint64_t>(kMaxMemberBytes));
  uint64_t at = 0;
  uint64_t end = 0;
  // The first gap at or after `at` (what readers and the read-ahead fetched meanwhile is
  // skipped) and its piece; false when the copy is complete from `at` on.
  auto gap = [&] {
    std::lock_guard lock(mutex_);
    auto it = held_.upper_bound(at);
    if (it != held_.begin() && std::prev(it)->second > at)
      at = std::prev(it)->second;
    if (at >= size)
      return false;
    end = requestEndLocked(at, piece);
    return true;
  };
  while (true) {
    RETURN_IF_ERROR(ctx.check());
    if (!gap())
      return {};
    if (between) {
      RETURN_IF_ERROR(between());
      if (!gap())  // the turn may have been long, and the read-ahead fetching meanwhile
        return {};
    }
    RETURN_IF_ERROR(ensure(at, end, ctx, Asker::kFill));
    at = end;
  }
}

uint64_t LazyLayer::aheadBytesLocked() const {
  return std::clamp<uint64_t>(link_.bytesIn(kAheadSeconds), kAheadMinBytes, kAheadMaxBytes);
}

void LazyLayer::noteReadLocked(uint64_t begin, uint64_t end) {
  last_read_ = std::chrono::steady_clock::now();
  const bool in_order = stream_reads_ > 0 && begin + kStreamBackBytes >= stream_begin_ &&
                        begin <= stream_end_ + kStreamGapBytes;
  if (!in_order) {
    stream_reads_ = 0;
    stream_bytes_ = 0;
    stream_end_ = 0;
  }
  // Only what it read counts, not what it skipped.
  if (end > stream_end_)
    stream_bytes_ += end - std::max(begin, stream_end_);
  stream_begin_ = begin;
  stream_end_ = std::max(stream_end_, end);
  ++stream_reads_;
  stream_time_ = last_read_;
}

bool LazyLayer::streamingLocked() const {
  return stream_reads_ >= kStreamMinReads &&
         (stream_reads_ >= kStreamReads || stream_bytes_ >= kStreamBytes);
}

std::chrono::steady_clock::time_point LazyLayer::lastRead() const {
  std::lock_guard lock(mutex_);
  return last_read_;
}

std::chrono::steady_clock::time_point LazyLayer::streamTime() const {
  std::lock_guard lock(mutex_);
  return stream_time_;
}

uint64_t LazyLayer::requestEndLocked(uint64_t from, uint64_t piece) const {
  piece = std::clamp<uint64_t>(std::min(piece, std::max(window_min_, link_.bytesIn(kRampSeconds))),
                               1, static_cast<uint64_t>(kMaxMemberBytes));
  uint64_t bound = static_cast<uint64_t>(layer_.size);
  if (auto next = held_.upper_bound(from); next != held_.end())
    bound = std::min(bound, next->first);
  for (const auto& [begin, end] : in_flight_) {
    if (begin > from)
      bound = std::min(bound, begin);
  }
  const uint64_t to = std::min(from + piece, bound);
  if (const uint64_t aligned = memberStartBefore(from, to); aligned != to)
    return aligned;
  if (const uint64_t member_end = std::min(memberEnd(from), bound);
      member_end > to && member_end - from <= piece + piece / 4) {
    return member_end;
  }
  return to;
}

Result<bool> LazyLayer::fetchAhead(const Context& ctx, uint64_t piece,
                                   std::chrono::steady_clock::duration fresh,
                                   const std::function<Status()>& turn) {
  uint64_t from = 0;
  uint64_t to = 0;
  // The request to make, if any.
  auto next = [&] {
    std::lock_guard lock(mutex_);
    if (!streamingLocked() || std::chrono::steady_clock::now() - stream_time_ > fresh)
      return false;
    const uint64_t limit =
        std::min(static_cast<uint64_t>(layer_.size), stream_end_ + aheadBytesLocked());
    // The first byte after the stream that is neither held nor on its way.
    from = stream_end_;
    for (bool moved = true; moved && from < limit;) {
      moved = false;
      if (auto it = held_.upper_bound(from); it != held_.begin() && std::prev(it)->second > from) {
        from = std::prev(it)->second;
        moved = true;
      }
      for (const auto& [begin, end] : in_flight_) {
        if (begin <= from && end > from) {
          from = end;
          moved = true;
        }
      }
    }
    if (from >= limit)
      return false;
    to = requestEndLocked(from, piece);
    return true;
  };
  if (!next())
    return false;
  if (turn) {
    RETURN_IF_ERROR(turn());
    if (!next())  // the turn may have been long: readers fetched meanwhile
      return false;
  }
  RETURN_IF_ERROR(ensure(from, to, ctx, Asker::kFill));
  return true;
}

void LazyLayer::setFetch(RangeFetch fetch) {
  std::lock_guard lock(mutex_);
  fetch_ = std::move(fetch);
}

bool LazyLayer::complete() const {
  std::lock_guard lock(mutex_);
  return heldLocked(0, static_cast<uint64_t>(layer_.size));
}

Status LazyLayer::readBlob(const std::function<Status(std::string_view)>& sink) const {
  if (!complete()) {
    return makeError(ErrorCode::kInternal,
                     "eStargz layer " + layer_.digest.str() + ": its copy is not complete");
  }
  constexpr uint64_t kPiece = uint64_t{1} << 20;
  const auto size = static_cast<uint64_t>(layer_.size);
  for (uint64_t at = 0; at < size; at += kPiece) {
    ASSIGN_OR_RETURN(auto bytes,
                     preadAll(blob_fd_, at, std::min(kPiece, size - at), cache_dir_ / "blob"));
    RETURN_IF_ERROR(sink(bytes));
  }
  return {};
}

void LazyLayer::discard() {
  std::lock_guard lock(mutex_);
  ++generation_;
  held_.clear();
  // The sparse copy's blocks go too: a later fill writes every byte again.
  if (::ftruncate(blob_fd_, 0) != 0)
    spdlog::warn("{}: the cache's copy could not be cut", layer_.digest.str());
  rewriteRecordLocked();
}

LazyLayer::Stats LazyLayer::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

void LazyLayer::setReaderWindow(uint64_t min_bytes, uint64_t max_bytes) {
  std::lock_guard lock(mutex_);
  window_min_ = min_bytes;
  window_max_ = max_bytes;
}

std::chrono::steady_clock::time_point LazyLayer::lastReaderFetch() const {
  std::lock_guard lock(mutex_);
  return reader_fetches_ > 0 ? std::chrono::steady_clock::now() : last_reader_fetch_;
}

LazyLayer::CacheFill LazyLayer::cacheFill(const fs::path& cache_dir) {
  CacheFill fill;
  // The layer's size from the kept TOC: "<offset>\n<member>", the footer after the member.
  const fs::path toc_path = cache_dir / "toc";
  struct stat info {};
  UniqueFd toc(::open(toc_path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!toc.valid() || ::fstat(toc.get(), &info) != 0 || !S_ISREG(info.st_mode))
    return fill;
  char head[32] = {};
  const ssize_t got = ::pread(toc.get(), head, sizeof head, 0);
  const std::string_view line(head, got > 0 ? static_cast<size_t>(got) : 0);
  const auto newline = line.find('\n');
  uint64_t offset = 0;
  if (newline == std::string_view::npos ||
      std::from_chars(line.data(), line.data() + newline, offset).ec != std::errc())
    return fill;
  const auto file_size = static_cast<uint64_t>(info.st_size);
  constexpr auto kMaxSize = static_cast<uint64_t>(std::numeric_limits<int64_t>::max() / 2);
  if (file_size < newline + 1 || offset > kMaxSize || file_size > kMaxSize)
    return fill;
  const uint64_t size = offset + (file_size - (newline + 1)) + kFooterSize;
  // The held ranges, merged and bounded by the size; a line that is not two numbers is skipped.
  std::map<uint64_t, uint64_t> held;
  auto text = readRegularFile(cache_dir / "held", kMaxHeldRecord);
  std::string_view rest = text ? std::string_view(*text) : std::string_view();
  while (!rest.empty()) {
    const auto end_of_line = rest.find('\n');
    const std::string_view entry = rest.substr(0, end_of_line);
    rest =
        end_of_line == std::string_view::npos ? std::string_view() : rest.substr(end_of_line + 1);
    uint64_t begin = 0;
    uint64_t end = 0;
    const auto space = entry.find(' ');
    if (space == std::string_view::npos ||
        std::from_chars(entry.data(), entry.data() + space, begin).ec != std::errc() ||
        std::from_chars(entry.data() + space + 1, entry.data() + entry.size(), end).ec !=
            std::errc())
      continue;
    end = std::min(end, size);
    if (begin < end)
      held[begin] = std::max(held[begin], end);
  }
  uint64_t total = 0;
  uint64_t covered = 0;  // held bytes are counted once, however the ranges overlap
  for (const auto& [begin, end] : held) {
    if (end > covered) {
      total += end - std::max(begin, covered);
      covered = end;
    }
  }
  fill.held = static_cast<int64_t>(total);
  fill.size = static_cast<int64_t>(size);
  return fill;
}

int64_t LazyLayer::bytesHeld() const {
  std::lock_guard lock(mutex_);
  uint64_t total = 0;
  for (const auto& [begin, end] : held_)
    total += end - begin;
  return static_cast<int64_t>(total);
}

}  // namespace pullagent::puller::estargz
