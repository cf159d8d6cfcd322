#include "puller/lazy/estargz_toc.h"

#include <zlib.h>

#include <algorithm>
#include <charconv>
#include <ctime>
#include <set>

#include "base/base64.h"
#include "base/confined_root.h"
#include "base/json_reader.h"
#include "base/redact.h"
#include "puller/oci/sha256.h"

namespace pullagent::puller::estargz {
namespace {

Error invalid(std::string why) {
  return makeError(ErrorCode::kInvalidArgument, "eStargz: " + std::move(why));
}

// A footer's fixed bytes (estargz.go footerBytes): a gzip header with FEXTRA (flags 4), an extra
// field of 26 bytes holding one subfield "SG" of 22 bytes ("%016x" of the TOC offset, then
// "STARGZ"), an empty stored deflate block, and the CRC and size of nothing.
constexpr size_t kExtraLengthAt = 10;
constexpr size_t kSubfieldAt = 12;
constexpr size_t kOffsetAt = 16;
constexpr std::string_view kMagic = "STARGZ";

// "2006-01-02T15:04:05Z", or with fractional seconds, or a "+hh:mm" / "-hh:mm" offset (Go's
// RFC 3339, which the TOC's modtime is).
std::optional<int64_t> parseModTime(std::string_view text) {
  auto number = [&](size_t at, size_t digits) -> std::optional<int> {
    int value = 0;
    if (at + digits > text.size())
      return std::nullopt;
    auto [end, ec] = std::from_chars(text.data() + at, text.data() + at + digits, value);
    if (ec != std::errc() || end != text.data() + at + digits)
      return std::nullopt;
    return value;
  };
  if (text.size() < 20 || text[4] != '-' || text[7] != '-' || text[10] != 'T' || text[13] != ':' ||
      text[16] != ':')
    return std::nullopt;
  const auto year = number(0, 4), month = number(5, 2), day = number(8, 2), hour = number(11, 2),
             minute = number(14, 2), second = number(17, 2);
  if (!year || !month || !day || !hour || !minute || !second || *month < 1 || *month > 12 ||
      *day < 1 || *day > 31 || *hour > 23 || *minute > 59 || *second > 60)
    return std::nullopt;
  size_t at = 19;
  if (text[at] == '.') {
    ++at;
    const size_t start = at;
    while (at < text.size() && at - start < 9 && text[at] >= '0' && text[at] <= '9')
      ++at;
    if (at == start)
      return std::nullopt;
  }
  int64_t offset = 0;
  if (at < text.size() && text[at] == 'Z') {
    ++at;
  } else if (at < text.size() && (text[at] == '+' || text[at] == '-')) {
    const auto hours = number(at + 1, 2), minutes = number(at + 4, 2);
    if (!hours || !minutes || at + 3 >= text.size() || text[at + 3] != ':' || *hours > 23 ||
        *minutes > 59)
      return std::nullopt;
    offset = (text[at] == '+' ? 1 : -1) * (*hours * 3600 + *minutes * 60);
    at += 6;
  } else {
    return std::nullopt;
  }
  if (at != text.size())
    return std::nullopt;
  struct tm parts {};
  parts.tm_year = *year - 1900;
  parts.tm_mon = *month - 1;
  parts.tm_mday = *day;
  parts.tm_hour = *hour;
  parts.tm_min = *minute;
  parts.tm_sec = *second;
  return static_cast<int64_t>(timegm(&parts)) - offset;
}

std::optional<EntryType> typeOf(std::string_view name) {
  static const std::map<std::string_view, EntryType> kTypes{
      {"dir", EntryType::kDirectory},   {"reg", EntryType::kRegular},
      {"symlink", EntryType::kSymlink}, {"hardlink", EntryType::kHardlink},
      {"char", EntryType::kCharDevice}, {"block", EntryType::kBlockDevice},
      {"fifo", EntryType::kFifo}};
  auto found = kTypes.find(name);
  return found == kTypes.end() ? std::nullopt : std::optional(found->second);
}

// One TOC entry's members, read and bounded; `where` names it in errors.
struct RawEntry {
  std::string type;
  std::string name;
  int64_t size = 0;
  int64_t offset = 0;
  int64_t inner_offset = 0;
  int64_t chunk_offset = 0;
  int64_t chunk_size = 0;
  std::optional<std::string> chunk_digest;
};

// The TOC's reader, entry by entry: a regular file is finished (its chunks checked to cover it)
// when the next entry that is not one of its chunks comes.
class TocBuilder {
 public:
  explicit TocBuilder(uint64_t toc_offset) : toc_offset_(toc_offset) {}

  Status add(const JsonReader& entry, size_t index) {
    const std::string at = "entries[" + std::to_string(index) + "]";
    auto fail = [&](const std::string& why) { return invalid(at + ": " + why); };
    if (!entry.isObject())
      return fail("not an object");
    RawEntry raw;
    ASSIGN_OR_RETURN(raw.type, entry["type"].string());
    ASSIGN_OR_RETURN(raw.name, entry["name"].string());
    const std::string named = at + " (" + safeEscaped(raw.name, 120) + ")";
    auto failNamed = [&](const std::string& why) { return invalid(named + ": " + why); };
    constexpr int64_t kMax = int64_t{1} << 50;  // a petabyte: beyond any layer
    ASSIGN_OR_RETURN(auto size, entry["size"].optionalInteger(0, kMax));
    ASSIGN_OR_RETURN(auto offset, entry["offset"].optionalInteger(0, kMax));
    ASSIGN_OR_RETURN(auto inner, entry["innerOffset"].optionalInteger(0, kMax));
    ASSIGN_OR_RETURN(auto chunk_offset, entry["chunkOffset"].optionalInteger(0, kMax));
    ASSIGN_OR_RETURN(auto chunk_size, entry["chunkSize"].optionalInteger(0, kMax));
    ASSIGN_OR_RETURN(raw.chunk_digest, entry["chunkDigest"].optionalString());
    raw.size = size.value_or(0);
    raw.offset = offset.value_or(0);
    raw.inner_offset = inner.value_or(0);
    raw.chunk_offset = chunk_offset.value_or(0);
    raw.chunk_size = chunk_size.value_or(0);

    if (raw.type == "chunk") {
      if (!open_file_)
        return failNamed("a chunk that follows no regular file");
      if (entries_.back().path != splitOr(raw.name))
        return failNamed("a chunk of another file than the one before it");
      return addChunk(raw, named);
    }
    RETURN_IF_ERROR(finishFile());
    const auto type = typeOf(raw.type);
    if (!type)
      return failNamed("unknown type \"" + safeEscaped(raw.type, 20) + "\"");
    if (raw.name.find('\0') != std::string::npos)
      return failNamed("a NUL in the name");
    auto path = ConfinedRoot::split(raw.name);
    if (!path)
      return failNamed("climbs out of the layer with \"..\"");
    if (path->empty())
      return failNamed("names the root");
    for (const auto& component : *path) {
      if (component.size() > 255)
        return failNamed("a name component longer than 255 bytes");
    }
    const std::string clean = ConfinedRoot::join(*path, path->size());
    if (!names_.insert(clean).second)
      return failNamed("a second entry of the same name");
    // The TOC's own tar entry comes after every entry it lists: a layer extracted whole ends
    // with the TOC there, whatever an entry of that name would hold read in place.
    if (clean == kTocName)
      return failNamed("an entry in the TOC's own place");

    Entry out;
    out.path = std::move(*path);
    out.type = *type;
    ASSIGN_OR_RETURN(auto mode, entry["mode"].optionalInteger(0, 0xFFFFFFFF));
    out.mode = static_cast<uint32_t>(mode.value_or(0) & 07777);
    ASSIGN_OR_RETURN(auto uid, entry["uid"].optionalInteger(0, 0xFFFFFFFE));
    ASSIGN_OR_RETURN(auto gid, entry["gid"].optionalInteger(0, 0xFFFFFFFE));
    out.uid = static_cast<uint32_t>(uid.value_or(0));
    out.gid = static_cast<uint32_t>(gid.value_or(0));
    ASSIGN_OR_RETURN(auto modified, entry["modtime"].optionalString());
    if (modified) {
      auto seconds = parseModTime(*modified);
      if (!seconds)
        return failNamed("modtime \"" + safeEscaped(*modified, 40) + "\" is not RFC 3339");
      out.modified = *seconds;
    }
    ASSIGN_OR_RETURN(auto major, entry["devMajor"].optionalInteger(0, 0xFFFFFFFF));
    ASSIGN_OR_RETURN(auto minor, entry["devMinor"].optionalInteger(0, 0xFFFFFFFF));
    out.device_major = static_cast<uint32_t>(major.value_or(0));
    out.device_minor = static_cast<uint32_t>(minor.value_or(0));
    if (!entry["xattrs"].missing()) {
      ASSIGN_OR_RETURN(auto xattrs, entry["xattrs"].members());
      if (xattrs.size() > kMaxXattrs)
        return failNamed("more than " + std::to_string(kMaxXattrs) + " xattrs");
      for (const auto& [key, value] : xattrs) {
        ASSIGN_OR_RETURN(auto encoded, value.string());
        auto decoded = decodeBase64(encoded, 64 * 1024);
        if (key.empty() || key.size() > 255 || !decoded)
          return failNamed("xattr \"" + safeEscaped(key, 60) + "\" is not a name and base64");
        out.xattrs[key] = std::move(*decoded);
      }
    }
    ASSIGN_OR_RETURN(auto link, entry["linkName"].optionalString());
    out.link_target = link.value_or("");
    if (out.type == EntryType::kSymlink &&
        (out.link_target.empty() || out.link_target.size() > 4096))
      return failNamed("a symlink needs a linkName of 1 to 4096 bytes");
    if (out.type == EntryType::kHardlink) {
      // An earlier regular file, by its clean name: no loop, no link out of the layer.
      auto target = ConfinedRoot::split(out.link_target);
      if (!target || target->empty())
        return failNamed("a hardlink to \"" + safeEscaped(out.link_target, 80) + "\"");
      const std::string target_name = ConfinedRoot::join(*target, target->size());
      if (regular_files_.count(target_name) == 0)
        return failNamed("a hardlink to \"" + safeEscaped(target_name, 80) +
                         "\", which is no regular file before it");
      out.link_target = target_name;
    }
    const bool is_file = out.type == EntryType::kRegular;
    if (!is_file && raw.size != 0)
      return failNamed("a size on an entry that is no regular file");
    out.size = static_cast<uint64_t>(raw.size);
    ASSIGN_OR_RETURN(auto digest, entry["digest"].optionalString());
    if (digest && is_file) {
      auto parsed = Digest::parse(*digest);
      if (!parsed)
        return failNamed("digest: " + parsed.error().message);
      out.digest = *parsed;
    }
    if (clean == kPrefetchLandmark || clean == kNoPrefetchLandmark) {
      if (prefetch_end_ || no_prefetch_)
        return failNamed("a second landmark");
      if (clean == kNoPrefetchLandmark)
        no_prefetch_ = true;
      else
        prefetch_end_ = static_cast<uint64_t>(raw.offset);
    }
    if (entries_.size() >= kMaxEntries)
      return failNamed("more than " + std::to_string(kMaxEntries) + " entries");
    entries_.push_back(std::move(out));
    if (is_file) {
      regular_files_.insert(clean);
      open_file_ = true;
      if (raw.size > 0)
        return addChunk(raw, named);
    }
    return {};
  }

  Result<Toc> finish() {
    RETURN_IF_ERROR(finishFile());
    if (prefetch_end_ && *prefetch_end_ > toc_offset_)
      return invalid("the prefetch landmark lies past the TOC");
    Toc toc;
    toc.entries = std::move(entries_);
    toc.prefetch_end = prefetch_end_;
    toc.no_prefetch = no_prefetch_;
    return toc;
  }

 private:
  static std::vector<std::string> splitOr(const std::string& name) {
    auto path = ConfinedRoot::split(name);
    return path ? *path : std::vector<std::string>{};
  }

  // The chunk `raw` of the open file: next in the file, its member not before the last chunk's
  // (members are written in order; several small files may share one, at growing inner offsets)
  // and before the TOC.
  Status addChunk(const RawEntry& raw, const std::string& named) {
    auto fail = [&](const std::string& why) { return invalid(named + ": " + why); };
    Entry& file = entries_.back();
    if (!raw.chunk_digest)
      return fail("a chunk without chunkDigest (it could not be verified alone)");
    auto digest = Digest::parse(*raw.chunk_digest);
    if (!digest)
      return fail("chunkDigest: " + digest.error().message);
    const auto expected = file.chunks.empty()
                              ? uint64_t{0}
                              : file.chunks.back().file_offset + file.chunks.back().size;
    if (static_cast<uint64_t>(raw.chunk_offset) != expected)
      return fail("chunkOffset " + std::to_string(raw.chunk_offset) + " where the file's next " +
                  "byte is " + std::to_string(expected));
    // chunkSize 0: the rest of the file.
    const uint64_t size =
        raw.chunk_size == 0 ? file.size - expected : static_cast<uint64_t>(raw.chunk_size);
    if (size == 0 || size > file.size - expected)
      return fail("chunkSize " + std::to_string(raw.chunk_size) + " past the file's size " +
                  std::to_string(file.size));
    const auto offset = static_cast<uint64_t>(raw.offset);
    const auto inner = static_cast<uint64_t>(raw.inner_offset);
    if (offset >= toc_offset_)
      return fail("offset " + std::to_string(offset) + " at or past the TOC (" +
                  std::to_string(toc_offset_) + ")");
    if (offset < last_offset_ || (offset == last_offset_ && inner < last_inner_ && any_chunk_))
      return fail("offset " + std::to_string(offset) + " before the previous chunk's (" +
                  std::to_string(last_offset_) + ")");
    last_offset_ = offset;
    last_inner_ = inner + size;
    any_chunk_ = true;
    file.chunks.push_back({offset, inner, expected, size, *digest});
    return {};
  }

  Status finishFile() {
    if (!open_file_)
      return {};
    open_file_ = false;
    const Entry& file = entries_.back();
    const uint64_t covered =
        file.chunks.empty() ? 0 : file.chunks.back().file_offset + file.chunks.back().size;
    if (covered != file.size)
      return invalid("the regular file \"" +
                     safeEscaped(ConfinedRoot::join(file.path, file.path.size()), 120) +
                     "\" has chunks for " + std::to_string(covered) + " of its " +
                     std::to_string(file.size) + " bytes");
    return {};
  }

  uint64_t toc_offset_;
  std::vector<Entry> entries_;
  std::set<std::string> names_;
  std::set<std::string> regular_files_;
  bool open_file_ = false;
  uint64_t last_offset_ = 0;
  uint64_t last_inner_ = 0;
  bool any_chunk_ = false;
  std::optional<uint64_t> prefetch_end_;
  bool no_prefetch_ = false;
};

// The bytes a gzip member inflates to, at most `max`.
Result<std::string> inflateMember(std::string_view member, size_t max) {
  z_stream stream{};
  if (inflateInit2(&stream, 16 + MAX_WBITS) != Z_OK)
    return makeError(ErrorCode::kInternal, "out of memory");
  std::string out;
  char buffer[64 * 1024];
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(member.data()));
  stream.avail_in = static_cast<uInt>(member.size());
  int rc = Z_OK;
  while (rc != Z_STREAM_END) {
    stream.next_out = reinterpret_cast<Bytef*>(buffer);
    stream.avail_out = sizeof buffer;
    rc = inflate(&stream, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END) {
      inflateEnd(&stream);
      return invalid("the TOC's gzip member does not inflate");
    }
    out.append(buffer, sizeof buffer - stream.avail_out);
    if (out.size() > max) {
      inflateEnd(&stream);
      return invalid("the TOC inflates past " + std::to_string(max) + " bytes");
    }
    if (rc != Z_STREAM_END && stream.avail_in == 0 && stream.avail_out != 0) {
      inflateEnd(&stream);
      return invalid("the TOC's gzip member is cut short");
    }
  }
  inflateEnd(&stream);
  return out;
}

// A tar header's octal number field.
std::optional<uint64_t> octal(std::string_view field) {
  uint64_t value = 0;
  size_t i = 0;
  while (i < field.size() && field[i] == ' ')
    ++i;
  const size_t start = i;
  for (; i < field.size() && field[i] >= '0' && field[i] <= '7'; ++i) {
    if (value > (uint64_t{1} << 60))
      return std::nullopt;
    value = value * 8 + static_cast<uint64_t>(field[i] - '0');
  }
  if (i == start)
    return std::nullopt;
  for (; i < field.size(); ++i)
    if (field[i] != ' ' && field[i] != '\0')
      return std::nullopt;
  return value;
}

}  // namespace

Result<uint64_t> parseFooter(std::string_view footer, uint64_t blob_size) {
  if (footer.size() != kFooterSize)
    return invalid("a footer of " + std::to_string(footer.size()) + " bytes, not 51");
  const auto byte = [&](size_t at) {
    return static_cast<unsigned>(static_cast<unsigned char>(footer[at]));
  };
  if (byte(0) != 0x1f || byte(1) != 0x8b || byte(2) != 8 || (byte(3) & 4) == 0)
    return invalid("the footer is no gzip member with an extra field");
  const unsigned extra_length = byte(kExtraLengthAt) | (byte(kExtraLengthAt + 1) << 8);
  const unsigned subfield_length = byte(kSubfieldAt + 2) | (byte(kSubfieldAt + 3) << 8);
  if (extra_length != 26 || footer[kSubfieldAt] != 'S' || footer[kSubfieldAt + 1] != 'G' ||
      subfield_length != 22 || footer.substr(kOffsetAt + 16, kMagic.size()) != kMagic)
    return invalid("the footer's extra field is not \"SG\" with a TOC offset and STARGZ");
  uint64_t offset = 0;
  const auto hex = footer.substr(kOffsetAt, 16);
  auto [end, ec] = std::from_chars(hex.data(), hex.data() + hex.size(), offset, 16);
  if (ec != std::errc() || end != hex.data() + hex.size())
    return invalid("the footer's TOC offset is not 16 hex digits");
  if (blob_size < kFooterSize || offset >= blob_size - kFooterSize)
    return invalid("the TOC offset " + std::to_string(offset) + " lies outside the blob's " +
                   std::to_string(blob_size) + " bytes");
  return offset;
}

Result<Toc> parseTocJson(std::string_view json, uint64_t toc_offset) {
  ASSIGN_OR_RETURN(auto document, parseJson(json, "eStargz TOC", ErrorCode::kInvalidArgument, 8));
  const JsonReader root(document, "eStargz TOC", ErrorCode::kInvalidArgument);
  if (!root.isObject())
    return root.typeError("an object");
  ASSIGN_OR_RETURN(auto version, root["version"].integer());
  if (version != 1)
    return root["version"].error("version " + std::to_string(version) + ", not 1");
  const JsonReader entries = root["entries"];
  if (!entries.isArray())
    return entries.typeError("an array");
  if (entries.raw().size() > kMaxEntries)
    return invalid("more than " + std::to_string(kMaxEntries) + " entries");
  TocBuilder builder(toc_offset);
  for (size_t i = 0; i < entries.raw().size(); ++i)
    RETURN_IF_ERROR(builder.add(entries[i], i));
  return builder.finish();
}

Result<Toc> readToc(std::string_view toc_member, const Digest& toc_digest, uint64_t toc_offset) {
  if (toc_member.size() > kMaxTocMemberBytes)
    return invalid("a TOC member of " + std::to_string(toc_member.size()) + " bytes");
  ASSIGN_OR_RETURN(auto tar, inflateMember(toc_member, kMaxTocJsonBytes + 4096));
  // One tar header (512 bytes) naming stargz.index.json, a regular file, then its bytes.
  constexpr size_t kBlock = 512;
  if (tar.size() < kBlock)
    return invalid("the TOC member holds no tar header");
  const std::string_view header(tar.data(), kBlock);
  const std::string_view name = header.substr(0, header.substr(0, 100).find('\0'));
  if (name != kTocName)
    return invalid("the TOC member's tar entry is \"" + safeEscaped(name, 100) + "\", not " +
                   std::string(kTocName));
  if (header[156] != '0' && header[156] != '\0')
    return invalid("the TOC's tar entry is no regular file");
  const auto size = octal(header.substr(124, 12));
  if (!size || *size > tar.size() - kBlock)
    return invalid("the TOC's tar entry has a size beyond its member");
  const std::string_view json(tar.data() + kBlock, *size);
  if (Sha256::of(json) != toc_digest)
    return invalid("the TOC's digest is " + Sha256::of(json).str() + ", the manifest says " +
                   toc_digest.str());
  return parseTocJson(json, toc_offset);
}

}  // namespace pullagent::puller::estargz
