#include "puller/trust/cbor.h"

#include <limits>

namespace pullagent::puller::cbor {
namespace {

enum Major : uint8_t {
  kUnsignedMajor = 0,
  kNegativeMajor = 1,
  kBytesMajor = 2,
  kTextMajor = 3,
  kArrayMajor = 4,
  kMapMajor = 5,
  kTagMajor = 6,
  kSimpleMajor = 7,
};

std::string head(uint8_t major, uint64_t value) {
  std::string out;
  const auto initial = static_cast<char>(major << 5);
  if (value < 24) {
    out.push_back(static_cast<char>(initial | static_cast<char>(value)));
    return out;
  }
  int bytes = value <= 0xff ? 1 : value <= 0xffff ? 2 : value <= 0xffffffffULL ? 4 : 8;
  const char info = bytes == 1 ? 24 : bytes == 2 ? 25 : bytes == 4 ? 26 : 27;
  out.push_back(static_cast<char>(initial | info));
  for (int i = bytes - 1; i >= 0; --i)
    out.push_back(static_cast<char>((value >> (8 * i)) & 0xff));
  return out;
}

class Decoder {
 public:
  Decoder(std::string_view bytes, const Limits& limits) : bytes_(bytes), limits_(limits) {}

  Result<Item> item(int depth) {
    if (depth > limits_.max_depth)
      return error("nested deeper than " + std::to_string(limits_.max_depth));
    if (++items_ > limits_.max_items)
      return error("more than " + std::to_string(limits_.max_items) + " items");
    if (at_ >= bytes_.size())
      return error("ends inside an item");
    const auto initial = static_cast<uint8_t>(bytes_[at_]);
    const uint8_t major = initial >> 5;
    const uint8_t info = initial & 0x1f;
    const size_t start = at_++;
    if (info == 31)
      return errorAt(start, "an indefinite length (or a break), which COSE signers never write");
    if (info >= 28)
      return errorAt(start, "a reserved additional information value");
    uint64_t value = info;
    if (info >= 24) {
      const size_t width = size_t{1} << (info - 24);
      if (bytes_.size() - at_ < width)
        return error("ends inside an item's head");
      value = 0;
      for (size_t i = 0; i < width; ++i)
        value = (value << 8) | static_cast<uint8_t>(bytes_[at_ + i]);
      at_ += width;
    }
    Item out;
    switch (major) {
      case kUnsignedMajor:
      case kNegativeMajor:
        out.type = major == kUnsignedMajor ? Item::Type::kUnsigned : Item::Type::kNegative;
        out.number = value;
        return out;
      case kBytesMajor:
      case kTextMajor:
        out.type = major == kBytesMajor ? Item::Type::kBytes : Item::Type::kText;
        // Checked against what is left before a byte is copied.
        if (value > bytes_.size() - at_)
          return errorAt(start, "a string of " + std::to_string(value) + " bytes, past the end");
        out.bytes.assign(bytes_.substr(at_, value));
        at_ += value;
        return out;
      case kArrayMajor: {
        out.type = Item::Type::kArray;
        // Every element takes a byte at least, and counts against the item budget: checked
        // before anything is reserved for them.
        if (value > bytes_.size() - at_)
          return errorAt(start, "an array of " + std::to_string(value) + " items, past the end");
        if (value > limits_.max_items - items_)
          return errorAt(start, "more than " + std::to_string(limits_.max_items) + " items");
        out.items.reserve(value);
        for (uint64_t i = 0; i < value; ++i) {
          ASSIGN_OR_RETURN(auto element, item(depth + 1));
          out.items.push_back(std::move(element));
        }
        return out;
      }
      case kMapMajor: {
        out.type = Item::Type::kMap;
        if (value > (bytes_.size() - at_) / 2)
          return errorAt(start, "a map of " + std::to_string(value) + " entries, past the end");
        if (value > (limits_.max_items - items_) / 2)
          return errorAt(start, "more than " + std::to_string(limits_.max_items) + " items");
        out.keys.reserve(value);
        out.items.reserve(value);
        for (uint64_t i = 0; i < value; ++i) {
          const size_t key_at = at_;
          ASSIGN_OR_RETURN(auto key, item(depth + 1));
          if (key.type != Item::Type::kUnsigned && key.type != Item::Type::kNegative &&
              key.type != Item::Type::kText)
            return errorAt(key_at, "a map key that is neither an integer nor a text");
          for (const auto& seen : out.keys) {
            if (seen.type == key.type && seen.number == key.number && seen.bytes == key.bytes)
              return errorAt(key_at, "the map key " + key.describe() + " a second time");
          }
          ASSIGN_OR_RETURN(auto entry, item(depth + 1));
          out.keys.push_back(std::move(key));
          out.items.push_back(std::move(entry));
        }
        return out;
      }
      case kTagMajor: {
        out.type = Item::Type::kTag;
        out.number = value;
        ASSIGN_OR_RETURN(auto tagged, item(depth + 1));
        out.items.push_back(std::move(tagged));
        return out;
      }
      default:  // kSimpleMajor
        if (info == 25 || info == 26 || info == 27) {
          out.type = Item::Type::kFloat;
          out.number = value;  // the raw bits
          return out;
        }
        if (info == 24 && value < 32)
          return errorAt(start, "a simple value in two bytes that fits in one");
        out.type = Item::Type::kSimple;
        out.number = value;
        return out;
    }
  }

  size_t at() const { return at_; }
  Error error(const std::string& why) const { return errorAt(at_, why); }
  Error errorAt(size_t where, const std::string& why) const {
    return makeError(ErrorCode::kUntrusted, "CBOR: at byte " + std::to_string(where) + ": " + why);
  }

 private:
  std::string_view bytes_;
  const Limits& limits_;
  size_t at_ = 0;
  size_t items_ = 0;
};

}  // namespace

std::optional<int64_t> Item::integer() const {
  constexpr auto kMax = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  if (type == Type::kUnsigned && number <= kMax)
    return static_cast<int64_t>(number);
  if (type == Type::kNegative && number <= kMax)
    return -1 - static_cast<int64_t>(number);
  return std::nullopt;
}

const Item* Item::find(int64_t key) const {
  for (size_t i = 0; i < keys.size(); ++i) {
    if (keys[i].type != Type::kText && keys[i].integer() == key)
      return &items[i];
  }
  return nullptr;
}

const Item* Item::find(std::string_view key) const {
  for (size_t i = 0; i < keys.size(); ++i) {
    if (keys[i].isText(key))
      return &items[i];
  }
  return nullptr;
}

std::string Item::describe() const {
  switch (type) {
    case Type::kUnsigned:
    case Type::kNegative: {
      const auto value = integer();
      return value ? std::to_string(*value) : "a 64-bit integer";
    }
    case Type::kText: {
      std::string out = "\"";
      for (char c : bytes.substr(0, 80)) {
        const auto u = static_cast<unsigned char>(c);
        out += u >= 0x20 && u < 0x7f && c != '"' && c != '\\' ? std::string(1, c) : "?";
      }
      return out + (bytes.size() > 80 ? "…\"" : "\"");
    }
    case Type::kBytes:
      return "a byte string";
    case Type::kArray:
      return "an array";
    case Type::kMap:
      return "a map";
    case Type::kTag:
      return "a tag " + std::to_string(number);
    case Type::kSimple:
      return number == 20   ? "false"
             : number == 21 ? "true"
             : number == 22 ? "null"
                            : "a simple value";
    case Type::kFloat:
      return "a float";
  }
  return "an item";
}

Result<Item> decode(std::string_view bytes, const Limits& limits) {
  Decoder decoder(bytes, limits);
  ASSIGN_OR_RETURN(auto item, decoder.item(0));
  if (decoder.at() != bytes.size())
    return decoder.error(std::to_string(bytes.size() - decoder.at()) + " bytes after the item");
  return item;
}

std::string bytesHead(uint64_t length) {
  return head(kBytesMajor, length);
}
std::string textHead(uint64_t length) {
  return head(kTextMajor, length);
}
std::string arrayHead(uint64_t length) {
  return head(kArrayMajor, length);
}

}  // namespace pullagent::puller::cbor
