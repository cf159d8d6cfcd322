#include "puller/lazy/estargz_toc.h"

#include <gtest/gtest.h>
#include <zlib.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>

#include "base/confined_root.h"
#include "puller/oci/sha256.h"
#include "tests/support/temp_dir.h"

namespace pullagent::puller::estargz {
namespace {

using testing::readFile;

// A layer written by tests/support/estargz.py (Python's gzip and tarfile, as stargz-snapshotter
// writes one): etc/, etc/hosts, the prefetch landmark, bin/, bin/big (2500 bytes in chunks of
// 1000), bin/sh -> big, bin/big2 a hardlink to bin/big.
const std::filesystem::path kData =
    std::filesystem::path(PULLAGENT_SOURCE_DIR) / "tests/puller/lazy/data";

struct Sample {
  std::string blob = readFile(kData / "sample.estargz");
  nlohmann::json facts = nlohmann::json::parse(readFile(kData / "sample.json"));
  uint64_t tocOffset() const { return facts["toc_offset"].get<uint64_t>(); }
  Digest tocDigest() const { return Digest::parse(facts["toc_digest"].get<std::string>()).value(); }
  std::string_view tocMember() const {
    return std::string_view(blob).substr(tocOffset(), blob.size() - tocOffset() - kFooterSize);
  }
};

// What a chunk's member inflates to, from its start: the chunk is its first `size` bytes
// after `inner_offset`.
std::string inflateFrom(std::string_view blob, const Chunk& chunk) {
  z_stream stream{};
  EXPECT_EQ(inflateInit2(&stream, 16 + MAX_WBITS), Z_OK);
  std::string out(chunk.inner_offset + chunk.size, '\0');
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(blob.data() + chunk.offset));
  stream.avail_in = static_cast<uInt>(blob.size() - chunk.offset);
  stream.next_out = reinterpret_cast<Bytef*>(out.data());
  stream.avail_out = static_cast<uInt>(out.size());
  while (stream.avail_out > 0) {
    const int rc = inflate(&stream, Z_NO_FLUSH);
    if (rc != Z_OK)
      break;
  }
  inflateEnd(&stream);
  return out.substr(chunk.inner_offset);
}

std::string pathOf(const Entry& entry) {
  return ConfinedRoot::join(entry.path, entry.path.size());
}

TEST(EstargzToc, TheFooterNamesTheTocAndTheTocEveryChunk) {
  const Sample sample;
  auto offset = parseFooter(std::string_view(sample.blob).substr(sample.blob.size() - kFooterSize),
                            sample.blob.size());
  ASSERT_TRUE(offset.ok()) << offset.error().message;
  EXPECT_EQ(*offset, sample.tocOffset());

  auto toc = readToc(sample.tocMember(), sample.tocDigest(), *offset);
  ASSERT_TRUE(toc.ok()) << toc.error().message;
  std::vector<std::string> paths;
  for (const auto& entry : toc->entries)
    paths.push_back(pathOf(entry));
  EXPECT_EQ(paths, (std::vector<std::string>{"etc", "etc/hosts", ".prefetch.landmark", "bin",
                                             "bin/big", "bin/sh", "bin/big2"}));
  const Entry& big = toc->entries[4];
  EXPECT_EQ(big.type, EntryType::kRegular);
  EXPECT_EQ(big.size, 2500u);
  EXPECT_EQ(big.mode, 0644u);
  EXPECT_EQ(big.modified, 1700000000);
  ASSERT_EQ(big.chunks.size(), 3u);
  // Each chunk's member, inflated alone, starts with the chunk, whose digest the TOC names.
  std::string content;
  for (const auto& chunk : big.chunks) {
    const std::string bytes = inflateFrom(sample.blob, chunk);
    EXPECT_EQ(Sha256::of(bytes), chunk.digest) << chunk.file_offset;
    EXPECT_EQ(chunk.file_offset, content.size());
    content += bytes;
  }
  EXPECT_EQ(Sha256::of(content), *big.digest);
  EXPECT_EQ(toc->entries[5].type, EntryType::kSymlink);
  EXPECT_EQ(toc->entries[5].link_target, "big");
  EXPECT_EQ(toc->entries[6].type, EntryType::kHardlink);
  EXPECT_EQ(toc->entries[6].link_target, "bin/big");
  // The landmark's member ends the prefetch set: etc/hosts lies before it, bin/big after.
  ASSERT_TRUE(toc->prefetch_end);
  EXPECT_LT(toc->entries[1].chunks[0].offset, *toc->prefetch_end);
  EXPECT_GT(big.chunks[0].offset, *toc->prefetch_end);
}

TEST(EstargzToc, ATocOtherThanTheManifestNamesIsNotRead) {
  const Sample sample;
  auto toc = readToc(sample.tocMember(), Sha256::of("another TOC"), sample.tocOffset());
  ASSERT_FALSE(toc.ok());
  EXPECT_NE(toc.error().message.find("the TOC's digest is " + sample.tocDigest().str() +
                                     ", the manifest says "),
            std::string::npos)
      << toc.error().message;
  // Bytes that are no gzip member, or a member cut short.
  EXPECT_FALSE(readToc("not gzip", sample.tocDigest(), sample.tocOffset()).ok());
  EXPECT_FALSE(
      readToc(sample.tocMember().substr(0, 40), sample.tocDigest(), sample.tocOffset()).ok());
}

TEST(EstargzToc, AFooterThatLiesIsRefused) {
  const Sample sample;
  const std::string footer = sample.blob.substr(sample.blob.size() - kFooterSize);
  // The TOC offset past the blob.
  EXPECT_FALSE(parseFooter(footer, sample.tocOffset()).ok());
  auto broken = [&](size_t at, char value) {
    std::string copy = footer;
    copy[at] = value;
    return parseFooter(copy, sample.blob.size());
  };
  EXPECT_FALSE(broken(12, 'X').ok());  // the subfield is not "SG"
  EXPECT_FALSE(broken(33, 'X').ok());  // not "STARGZ"
  EXPECT_FALSE(broken(20, 'g').ok());  // not hex
  EXPECT_FALSE(broken(0, 0).ok());     // no gzip member
  EXPECT_FALSE(parseFooter(footer.substr(1), sample.blob.size()).ok());
}

// Hostile TOCs, each refused with the entry named.
struct Hostile {
  std::string entries;  // the "entries" array's text
  std::string says;
  friend void PrintTo(const Hostile& c, std::ostream* out) { *out << c.says; }
};

class EstargzHostileToc : public ::testing::TestWithParam<Hostile> {};

TEST_P(EstargzHostileToc, IsRefusedNamingTheEntry) {
  const std::string json = R"({"version":1,"entries":)" + GetParam().entries + "}";
  auto toc = parseTocJson(json, 100000);
  ASSERT_FALSE(toc.ok()) << json;
  EXPECT_EQ(toc.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(toc.error().message.find(GetParam().says), std::string::npos) << toc.error().message;
}

const std::string kDigest = Sha256::of("x").str();
std::string reg(const std::string& name, int size, int offset, int chunk_size = 0,
                const std::string& type = "reg", int chunk_offset = 0) {
  return R"({"name":")" + name + R"(","type":")" + type + R"(","size":)" + std::to_string(size) +
         R"(,"offset":)" + std::to_string(offset) + R"(,"chunkOffset":)" +
         std::to_string(chunk_offset) + R"(,"chunkSize":)" + std::to_string(chunk_size) +
         R"(,"chunkDigest":")" + kDigest + R"("})";
}

INSTANTIATE_TEST_SUITE_P(
    Table, EstargzHostileToc,
    ::testing::Values(
        Hostile{"[" + reg("../../etc/passwd", 1, 10) + "]",
                "entries[0] (../../etc/passwd): climbs out of the layer"},
        Hostile{R"([{"name":"a\u0000b","type":"dir"}])", "entries[0] (a\\x00b): a NUL"},
        Hostile{"[" + reg("a", 10, 10, 4) + "," + reg("a", 10, 20, 4, "chunk", 8) + "]",
                "chunkOffset 8 where the file's next byte is 4"},
        Hostile{"[" + reg("a", 10, 10, 4) + "," + reg("a", 10, 20, 8, "chunk", 4) + "]",
                "chunkSize 8 past the file's size 10"},
        Hostile{"[" + reg("a", 10, 10, 4) + "]", "has chunks for 4 of its 10 bytes"},
        Hostile{"[" + reg("a", 1, 50) + "," + reg("b", 1, 40) + "]",
                "entries[1] (b): offset 40 before the previous chunk's (50)"},
        Hostile{"[" + reg("a", 1, 100000) + "]", "offset 100000 at or past the TOC (100000)"},
        Hostile{"[" + reg("a", 1, 10) + "," + reg("a", 1, 20) + "]",
                "a second entry of the same name"},
        Hostile{
            R"([{"name":"l","type":"hardlink","linkName":"later"},)" + reg("later", 1, 10) + "]",
            "a hardlink to \"later\", which is no regular file before it"},
        Hostile{"[" + reg("a", 1, 10) +
                    R"(,{"name":"h1","type":"hardlink","linkName":"a"},)"
                    R"({"name":"h2","type":"hardlink","linkName":"h1"}])",
                "entries[2] (h2): a hardlink to \"h1\", which is no regular file before it"},
        Hostile{R"([{"name":"a","type":"reg","size":1,"offset":10}])",
                "a chunk without chunkDigest"},
        Hostile{"[" + reg("b", 1, 10, 0, "chunk") + "]", "a chunk that follows no regular file"},
        Hostile{R"([{"name":"d","type":"socket"}])", "unknown type \"socket\""},
        Hostile{R"([{"name":"s","type":"symlink"}])", "a symlink needs a linkName"},
        Hostile{R"([{"name":"d","type":"dir","size":5}])",
                "a size on an entry that is no regular file"},
        Hostile{R"([{"name":"d","type":"dir","size":-1}])", "entries[0].size"},
        Hostile{R"([{"name":"/","type":"dir"}])", "names the root"},
        Hostile{"[" + reg("./stargz.index.json", 1, 10) + "]", "in the TOC's own place"},
        Hostile{R"([{"name":"d","type":"dir","modtime":"yesterday"}])", "is not RFC 3339"},
        Hostile{R"([{"name":".prefetch.landmark","type":"dir"},)"
                R"({"name":".no.prefetch.landmark","type":"dir"}])",
                "a second landmark"},
        Hostile{R"("nope")", "expected an array"}));

TEST(EstargzToc, AbsoluteNamesAreReadInsideTheLayer) {
  auto toc = parseTocJson(R"({"version":1,"entries":[{"name":"/usr//bin/","type":"dir"}]})", 10);
  ASSERT_TRUE(toc.ok()) << toc.error().message;
  EXPECT_EQ(pathOf(toc->entries[0]), "usr/bin");
  EXPECT_FALSE(parseTocJson(R"({"version":2,"entries":[]})", 10).ok());
}

}  // namespace
}  // namespace pullagent::puller::estargz
