#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace pullagent::puller::cbor {

// One CBOR data item (RFC 8949), decoded whole. What COSE signatures need and no more: the
// integer, byte and text strings, arrays, maps, tags and simple values of definite length.
struct Item {
  enum class Type { kUnsigned, kNegative, kBytes, kText, kArray, kMap, kTag, kSimple, kFloat };
  Type type = Type::kUnsigned;
  // kUnsigned: the value; kNegative: n for the value -1 - n; kTag: the tag number; kSimple:
  // the simple value (20 false, 21 true, 22 null, 23 undefined).
  uint64_t number = 0;
  std::string bytes;  // kBytes, kText (UTF-8 unchecked: compared byte for byte)
  // kArray: the elements; kTag: the one tagged item; kMap: the values, in the encoded order,
  // each under the key of the same index in `keys`.
  std::vector<Item> items;
  std::vector<Item> keys;  // kMap

  bool isText(std::string_view text) const { return type == Type::kText && bytes == text; }
  // The integer as a signed value, if it is an integer that fits.
  std::optional<int64_t> integer() const;
  // The map's value under an integer or a text key, or nullptr.
  const Item* find(int64_t key) const;
  const Item* find(std::string_view key) const;
  // "-38", "\"io.cncf.notary.expiry\"", "a byte string": for error texts (short, escaped).
  std::string describe() const;
};

// Decoding is bounded for hostile input: the whole input is one item with nothing after it;
// lengths are checked against the bytes left before anything is allocated; nesting and the
// count of items are limited. Indefinite lengths are refused (no COSE signer writes them, and
// one spelling per value keeps the signed bytes unambiguous), and so are maps with a key twice
// (RFC 9052 §14 requires unique labels; which one a verifier reads would otherwise differ).
struct Limits {
  int max_depth = 16;
  size_t max_items = 4096;
};
Result<Item> decode(std::string_view bytes, const Limits& limits = {});

// The encoded head of a byte string, a text string or an array of `length` (the item's bytes
// follow for strings): what a verifier needs to build a COSE Sig_structure.
std::string bytesHead(uint64_t length);
std::string textHead(uint64_t length);
std::string arrayHead(uint64_t length);

}  // namespace pullagent::puller::cbor
