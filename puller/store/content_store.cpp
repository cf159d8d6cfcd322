#include "puller/store/content_store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <system_error>

#include "base/atomic_file.h"
#include "base/bounded_read.h"

namespace pullagent::puller {
namespace fs = std::filesystem;
namespace {

constexpr size_t kReadChunk = 1 << 20;
// How far the verified prefix of a download in ranges moves before its record is rewritten:
// what a killed process loses at most of it.
constexpr int64_t kPrefixRecordStep = int64_t{8} << 20;

Status writeAll(int fd, std::string_view bytes, const fs::path& path) {
  while (!bytes.empty()) {
    ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return errnoError(errno, "write", path);
    }
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return {};
}

}  // namespace

Ingest::Ingest(ContentStore& store, Digest digest, int64_t expected_size, int fd, fs::path path,
               std::string key)
    : store_(store),
      digest_(std::move(digest)),
      expected_size_(expected_size),
      fd_(fd),
      path_(std::move(path)),
      key_(std::move(key)) {}

Ingest::~Ingest() {
  // Bytes written ahead that never joined the prefix would be taken for received bytes by the
  // next attempt to resume this file, and the holes between them for zeros.
  // The record goes only once the file is what it says (else a resume keeps what it names).
  bool cut = true;
  if (fd_ >= 0 && !committed_ && !dropped_ && written_end_ > offset_)
    cut = ::ftruncate(fd_, offset_) == 0;
  if (recording_ && cut)
    ::unlink(prefixRecordPath().c_str());
  if (fd_ >= 0)
    ::close(fd_);  // also releases the flock; the partial file stays for resume
  store_.release(key_);
}

Status Ingest::dropped() const {
  return makeError(
      ErrorCode::kResourceExhausted,
      "blob " + digest_.str() + ": its partial download was dropped when the disk filled up");
}

Status Ingest::fail(Status status) {
  if (status.error().native == ENOSPC || status.error().native == EDQUOT) {
    // A full disk: the partial blob cannot be finished now and only keeps the disk full. Its
    // name is gone, so this ingest is done: another may take the name at once, and nothing
    // written here may ever be renamed over what that one writes.
    // Its record goes first, while the name is still this ingest's, and only when the file
    // goes too.
    if (::ftruncate(fd_, 0) == 0) {
      dropRecord();
      ::unlink(path_.c_str());
    }
    dropped_ = true;
    offset_ = 0;
    written_end_ = 0;
    hasher_ = Sha256();
  }
  return status;
}

Status Ingest::write(std::string_view bytes) {
  if (dropped_)
    return dropped();
  if (offset_ + static_cast<int64_t>(bytes.size()) > expected_size_) {
    return makeError(ErrorCode::kDigestMismatch, "blob " + digest_.str() + " is longer than the " +
                                                     std::to_string(expected_size_) +
                                                     " bytes its descriptor declares");
  }
  if (auto status = writeAll(fd_, bytes, path_); !status)
    return fail(std::move(status));
  hasher_.update(bytes);
  offset_ += static_cast<int64_t>(bytes.size());
  return {};
}

std::filesystem::path Ingest::prefixRecordPath() const {
  return path_.string() + ".prefix";
}

Status Ingest::recordPrefix() {
  RETURN_IF_ERROR(writeRecord(offset_));
  recording_ = true;
  recorded_ = offset_;
  return {};
}

void Ingest::dropRecord() {
  if (recording_)
    ::unlink(prefixRecordPath().c_str());
  recording_ = false;
}

Status Ingest::writeRecord(int64_t prefix) {
  const std::string text = std::to_string(prefix);
  int fd = ::open(prefixRecordPath().c_str(),
                  O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC | (recording_ ? 0 : O_TRUNC), 0600);
  if (fd < 0)
    return errnoError(errno, "open", prefixRecordPath());
  // Fixed width: a shorter number never leaves digits of a longer one behind.
  std::string padded(20 - text.size(), '0');
  padded += text;
  const bool written =
      ::pwrite(fd, padded.data(), padded.size(), 0) == static_cast<ssize_t>(padded.size());
  const int err = errno;
  ::close(fd);
  if (!written)
    return errnoError(err, "write", prefixRecordPath());
  return {};
}

Status Ingest::keepRecordedPrefix() {
  const auto record = prefixRecordPath();
  int fd = ::open(record.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return errno == ENOENT ? Status{} : errnoError(errno, "open", record);
  char text[21] = {};
  const ssize_t n = ::read(fd, text, 20);
  ::close(fd);
  int64_t prefix = 0;
  auto [end, error] = std::from_chars(text, text + std::max<ssize_t>(n, 0), prefix);
  if (n != 20 || error != std::errc() || end != text + 20 || prefix < 0 || prefix > expected_size_)
    prefix = 0;  // unreadable: nothing it held can be told from scratch
  // Never longer than the file: cutting to more would add zeros taken for received bytes.
  struct stat info {};
  if (::fstat(fd_, &info) != 0)
    return errnoError(errno, "stat", path_);
  prefix = std::min<int64_t>(prefix, info.st_size);
  if (::ftruncate(fd_, prefix) != 0)
    return errnoError(errno, "truncate", path_);
  ::unlink(record.c_str());
  return {};
}

Status Ingest::writeAt(int64_t position, std::string_view bytes) {
  if (dropped_)
    return dropped();
  if (!recording_)
    RETURN_IF_ERROR(recordPrefix());
  const auto size = static_cast<int64_t>(bytes.size());
  if (position < offset_ || position > expected_size_ - size) {
    return makeError(ErrorCode::kDigestMismatch,
                     "blob " + digest_.str() + ": " + std::to_string(size) + " bytes at " +
                         std::to_string(position) + " lie outside the " +
                         std::to_string(expected_size_) + " bytes its descriptor declares");
  }
  while (!bytes.empty()) {
    ssize_t n = ::pwrite(fd_, bytes.data(), bytes.size(), position);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return fail(errnoError(errno, "write", path_));
    }
    bytes.remove_prefix(static_cast<size_t>(n));
    position += n;
    written_end_ = std::max(written_end_, position);
  }
  return {};
}

Status Ingest::adopt(int64_t length) {
  if (dropped_)
    return dropped();
  if (length < 0 || length > written_end_ - offset_) {
    return makeError(ErrorCode::kInternal, "blob " + digest_.str() + ": adopting " +
                                               std::to_string(length) +
                                               " bytes that were not written");
  }
  std::string buffer(static_cast<size_t>(std::min<int64_t>(length, kReadChunk)), '\0');
  while (length > 0) {
    const auto want = static_cast<size_t>(std::min<int64_t>(length, kReadChunk));
    ssize_t n = ::pread(fd_, buffer.data(), want, offset_);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return errnoError(n < 0 ? errno : EIO, "read back", path_);
    hasher_.update({buffer.data(), static_cast<size_t>(n)});
    offset_ += n;
    length -= n;
  }
  // write() appends at the file position: it follows the prefix.
  if (::lseek(fd_, offset_, SEEK_SET) != offset_)
    return errnoError(errno, "seek", path_);
  if (offset_ - recorded_ >= kPrefixRecordStep || offset_ == expected_size_)
    return recordPrefix();
  return {};
}

Status Ingest::restart() {
  if (dropped_)
    return dropped();
  // The record says 0 before the file is cut (a kill between the two leaves a record no larger
  // than the file), and this object forgets its bytes only once the file has: on a failure it
  // still describes the file as it is.
  if (recording_)
    RETURN_IF_ERROR(writeRecord(0));
  if (::ftruncate(fd_, 0) != 0 || ::lseek(fd_, 0, SEEK_SET) != 0) {
    return errnoError(errno, "truncate", path_);
  }
  hasher_ = Sha256();
  offset_ = 0;
  written_end_ = 0;
  recorded_ = 0;
  return {};
}

Status Ingest::commit(const std::function<void()>& verified) {
  if (dropped_)
    return dropped();
  if (offset_ != expected_size_) {
    return makeError(ErrorCode::kDigestMismatch,
                     "blob " + digest_.str() + " has " + std::to_string(offset_) +
                         " bytes, its descriptor declares " + std::to_string(expected_size_));
  }
  Digest actual = hasher_.finish();
  if (actual != digest_) {
    dropRecord();  // while the name is still this ingest's
    ::unlink(path_.c_str());
    return makeError(
        ErrorCode::kDigestMismatch,
        "blob content hashes to " + actual.str() + ", expected " + digest_.str() + " (discarded)");
  }
  if (verified)
    verified();
  // The file holds exactly the bytes that were hashed (nothing past them, nothing before them
  // left over from an earlier download).
  struct stat size_of {};
  if (::fstat(fd_, &size_of) != 0 || size_of.st_size != expected_size_) {
    dropRecord();
    ::unlink(path_.c_str());
    return makeError(ErrorCode::kDigestMismatch,
                     "blob " + digest_.str() + ": its ingest file does not hold exactly the " +
                         std::to_string(expected_size_) + " bytes that were verified (discarded)");
  }
  dropRecord();  // whatever happens to the name next, the record is not needed
  if (store_.contains(digest_, expected_size_)) {
    // Another source's verified copy won the race: the same bytes are already in place.
    ::unlink(path_.c_str());
    committed_ = true;
    return {};
  }
  if (::fsync(fd_) != 0)
    return errnoError(errno, "fsync", path_);
  // The rename goes by name: the name must still be this file's, or it would publish whatever
  // another writer has there now.
  struct stat held {};
  struct stat named {};
  if (::fstat(fd_, &held) != 0 || ::lstat(path_.c_str(), &named) != 0 ||
      held.st_dev != named.st_dev || held.st_ino != named.st_ino) {
    return makeError(ErrorCode::kUnavailable,
                     "blob " + digest_.str() + ": its ingest file " + path_.string() +
                         " was replaced under this download; not committed");
  }
  auto target = store_.blobPath(digest_);
  if (::rename(path_.c_str(), target.c_str()) != 0)
    return errnoError(errno, "rename", target);
  committed_ = true;
  return syncDirectory(target.parent_path());
}

Result<std::unique_ptr<ContentStore>> ContentStore::open(const fs::path& root) {
  std::error_code ec;
  for (const auto& dir : {blobsDir(root), root / "ingest"}) {
    fs::create_directories(dir, ec);
    if (ec)
      return errnoError(ec.value(), "create directory", dir);
  }
  return std::unique_ptr<ContentStore>(new ContentStore(root));
}

fs::path ContentStore::blobPath(const Digest& digest) const {
  return blobsDir(root_) / digest.hex();
}

bool ContentStore::contains(const Digest& digest, int64_t size) const {
  struct stat info {};
  if (::stat(blobPath(digest).c_str(), &info) != 0)
    return false;
  return S_ISREG(info.st_mode) && info.st_size == size;
}

Result<std::string> ContentStore::readBlob(const Digest& digest, int64_t max_size) const {
  return readRegularFile(blobPath(digest), static_cast<size_t>(std::max<int64_t>(max_size, 0)));
}

Status ContentStore::putBlob(const Digest& digest, std::string_view bytes, const Context& ctx) {
  if (contains(digest, static_cast<int64_t>(bytes.size())))
    return {};
  ASSIGN_OR_RETURN(auto ingest, beginIngest(digest, static_cast<int64_t>(bytes.size()), "", ctx));
  if (!ingest)
    return {};  // stored meanwhile
  RETURN_IF_ERROR(ingest->restart());
  RETURN_IF_ERROR(ingest->write(bytes));
  return ingest->commit();
}

Result<std::unique_ptr<Ingest>> ContentStore::beginIngest(const Digest& digest,
                                                          int64_t expected_size,
                                                          std::string_view source,
                                                          const Context& ctx, bool even_if_stored) {
  const std::string key = ingestPath(digest, source).filename().string();
  {
    std::unique_lock lock(mutex_);
    while (active_.count(key) != 0) {
      released_.wait_for(lock, ctx.stop, std::chrono::milliseconds(200), [] { return false; });
      RETURN_IF_ERROR(ctx.check());
    }
    active_.insert(key);
  }
  // The caller we waited for may have finished this very blob.
  if (!even_if_stored && contains(digest, expected_size)) {
    release(key);
    return std::unique_ptr<Ingest>();
  }
  // From here on, release() must run on every exit: the Ingest's destructor does it.
  const auto path = ingestPath(digest, source);
  std::unique_ptr<Ingest> ingest;
  while (true) {
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
      int err = errno;
      if (!ingest)
        release(key);
      return errnoError(err, "open ingest file", path);
    }
    if (!ingest) {
      ingest.reset(new Ingest(*this, digest, expected_size, fd, path, key));
    } else {
      ::close(ingest->fd_);
      ingest->fd_ = fd;
    }
    // Another process (a second agent, a debugging --once run) may be writing the same blob.
    while (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      if (errno != EWOULDBLOCK && errno != EINTR)
        return errnoError(errno, "lock", path);
      if (!ctx.clock->sleepFor(std::chrono::milliseconds(100), ctx.stop)) {
        return makeError(ErrorCode::kCancelled, "stop requested");
      }
    }
    // The holder we waited for may have committed the file (renamed it into blobs/) or removed
    // it: then the locked inode is no longer the ingest file, and writing to it (or renaming
    // whatever now has its name at commit) would mix two downloads. Open the name again.
    struct stat locked {};
    struct stat named {};
    if (::fstat(fd, &locked) == 0 && ::lstat(path.c_str(), &named) == 0 &&
        locked.st_dev == named.st_dev && locked.st_ino == named.st_ino) {
      break;
    }
  }
  const int fd = ingest->fd_;

  // Another process finished the blob while we waited for its lock: what we hold is an empty
  // file we just created; drop it (under our lock, and it is still the file at its name).
  if (!even_if_stored && contains(digest, expected_size)) {
    struct stat opened {};
    if (::fstat(fd, &opened) == 0 && opened.st_size == 0)
      ::unlink(path.c_str());
    return std::unique_ptr<Ingest>();
  }
  // A download in ranges that ended without its Ingest (a killed process) left bytes past its
  // prefix, and holes between them: only the prefix its record names is kept.
  RETURN_IF_ERROR(ingest->keepRecordedPrefix());
  // Resume: re-hash what an earlier attempt left.
  struct stat info {};
  if (::fstat(fd, &info) != 0)
    return errnoError(errno, "stat", path);
  if (info.st_size > expected_size) {
    RETURN_IF_ERROR(ingest->restart());
    return ingest;
  }
  std::string buffer(kReadChunk, '\0');
  while (true) {
    ssize_t n = ::read(fd, buffer.data(), buffer.size());
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return errnoError(errno, "read", path);
    }
    if (n == 0)
      break;
    ingest->hasher_.update({buffer.data(), static_cast<size_t>(n)});
    ingest->offset_ += n;
  }
  return ingest;
}

fs::path ContentStore::ingestPath(const Digest& digest, std::string_view source) const {
  // ingest/<hex> for bytes we hold ourselves, ingest/<hex>.<16 hex of the source> for downloads.
  std::string name = digest.hex();
  if (!source.empty())
    name += "." + Sha256::of(source).hex().substr(0, 16);
  return root_ / "ingest" / name;
}

void ContentStore::release(const std::string& key) {
  {
    std::lock_guard lock(mutex_);
    active_.erase(key);
  }
  released_.notify_all();
}

}  // namespace pullagent::puller
