// The CBOR reader under COSE envelopes: every item type COSE uses, and hostile input (lengths
// past the end, nesting, indefinite lengths, keys twice, bytes after the item) refused by name
// before anything is allocated for it.
#include "puller/trust/cbor.h"

#include <gtest/gtest.h>

#include <string>

namespace pullagent::puller::cbor {
namespace {

std::string bytesOf(std::initializer_list<int> values) {
  std::string out;
  for (int value : values)
    out.push_back(static_cast<char>(value));
  return out;
}

std::string errorOf(const std::string& input, const Limits& limits = {}) {
  auto decoded = decode(input, limits);
  EXPECT_FALSE(decoded.ok());
  return decoded.ok() ? "" : decoded.error().message;
}

TEST(Cbor, DecodesTheItemsCoseUses) {
  // 18([h'a10126', {33: [h'01']}, h'', h'ff']) with a map of an integer and a text key.
  auto message = decode(bytesOf({0xd2, 0x84, 0x43, 0xa1, 0x01, 0x26, 0xa2, 0x18, 0x21, 0x81, 0x41,
                                 0x01, 0x61, 0x61, 0xf5, 0x40, 0x41, 0xff}));
  ASSERT_TRUE(message.ok()) << message.error().message;
  EXPECT_EQ(message->type, Item::Type::kTag);
  EXPECT_EQ(message->number, 18u);
  const Item& parts = message->items.at(0);
  ASSERT_EQ(parts.items.size(), 4u);
  auto header = decode(parts.items[0].bytes);
  ASSERT_TRUE(header.ok());
  EXPECT_EQ(header->find(1)->integer(), -7);
  EXPECT_EQ(parts.items[1].find(33)->items.at(0).bytes, "\x01");
  EXPECT_EQ(parts.items[1].find("a")->describe(), "true");
  EXPECT_EQ(parts.items[1].find("b"), nullptr);
  EXPECT_EQ(parts.items[1].find(34), nullptr);
  EXPECT_TRUE(parts.items[2].bytes.empty());
  // Integers in every width, and the largest negative one.
  EXPECT_EQ(decode(bytesOf({0x1b, 0, 0, 0, 1, 0, 0, 0, 0}))->integer(), int64_t{1} << 32);
  EXPECT_EQ(decode(bytesOf({0x39, 0x01, 0x00}))->integer(), -257);
  EXPECT_FALSE(decode(bytesOf({0x3b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}))->integer());
}

TEST(Cbor, HostileLengthsAreRefusedBeforeAllocating) {
  // A byte string, an array and a map claiming 2^63 and more.
  EXPECT_EQ(errorOf(bytesOf({0x5b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})),
            "CBOR: at byte 0: a string of 9223372036854775807 bytes, past the end");
  EXPECT_EQ(errorOf(bytesOf({0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})),
            "CBOR: at byte 0: an array of 18446744073709551615 items, past the end");
  EXPECT_EQ(errorOf(bytesOf({0xa2, 0x01, 0x02, 0x03})),
            "CBOR: at byte 0: a map of 2 entries, past the end");
  EXPECT_EQ(errorOf(bytesOf({0x19, 0x01})), "CBOR: at byte 1: ends inside an item's head");
  EXPECT_EQ(errorOf(""), "CBOR: at byte 0: ends inside an item");
}

TEST(Cbor, OneSpellingOfOneMeaning) {
  EXPECT_EQ(errorOf(bytesOf({0x5f, 0x41, 0x00, 0xff})),
            "CBOR: at byte 0: an indefinite length (or a break), which COSE signers never write");
  EXPECT_EQ(errorOf(bytesOf({0xa2, 0x01, 0x02, 0x01, 0x03})),
            "CBOR: at byte 3: the map key 1 a second time");
  EXPECT_EQ(errorOf(bytesOf({0xa2, 0x61, 0x78, 0x00, 0x61, 0x78, 0x01})),
            "CBOR: at byte 4: the map key \"x\" a second time");
  EXPECT_EQ(errorOf(bytesOf({0xa1, 0x40, 0x00})),
            "CBOR: at byte 1: a map key that is neither an integer nor a text");
  EXPECT_EQ(errorOf(bytesOf({0x01, 0x02})), "CBOR: at byte 1: 1 bytes after the item");
  EXPECT_EQ(errorOf(bytesOf({0x1c})), "CBOR: at byte 0: a reserved additional information value");
  EXPECT_EQ(errorOf(bytesOf({0xf8, 0x10})),
            "CBOR: at byte 0: a simple value in two bytes that fits in one");
}

TEST(Cbor, NestingAndItemCountAreBounded) {
  const std::string deep(17, static_cast<char>(0x81));
  EXPECT_EQ(errorOf(deep + '\x00'), "CBOR: at byte 17: nested deeper than 16");
  EXPECT_TRUE(decode(std::string(16, static_cast<char>(0x81)) + '\x00').ok());
  std::string wide = bytesOf({0x99, 0x10, 0x00}) + std::string(4096, '\x00');
  // Refused at the array's head, before anything is reserved for its items.
  EXPECT_EQ(errorOf(wide), "CBOR: at byte 0: more than 4096 items");
  EXPECT_TRUE(decode(wide, Limits{16, 5000}).ok());
}

TEST(Cbor, HeadsAreWrittenInTheShortestForm) {
  EXPECT_EQ(arrayHead(4), bytesOf({0x84}));
  EXPECT_EQ(textHead(10), bytesOf({0x6a}));
  EXPECT_EQ(bytesHead(0), bytesOf({0x40}));
  EXPECT_EQ(bytesHead(23), bytesOf({0x57}));
  EXPECT_EQ(bytesHead(24), bytesOf({0x58, 0x18}));
  EXPECT_EQ(bytesHead(256), bytesOf({0x59, 0x01, 0x00}));
  EXPECT_EQ(bytesHead(65536), bytesOf({0x5a, 0x00, 0x01, 0x00, 0x00}));
  EXPECT_EQ(bytesHead(uint64_t{1} << 32), bytesOf({0x5b, 0, 0, 0, 1, 0, 0, 0, 0}));
}

}  // namespace
}  // namespace pullagent::puller::cbor
