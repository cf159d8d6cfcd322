// Provenance records as a state dir may hold them after a crash, a bad disk or a hand edit: the
// parser must never crash, and whatever it accepts must write back to a record that reads the
// same (a record that changed on its way through would grant what was never proven).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "puller/store/provenance.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace pullagent::puller;
  static const Digest kExpected =
      Digest::parse("sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae")
          .value();
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto record = parseProvenanceRecord(text, kExpected);
  if (!record)
    return 0;
  auto again = parseProvenanceRecord(serializeProvenanceRecord(record.value()), kExpected);
  if (!again || again->sources != record->sources || again->diff_id != record->diff_id ||
      again->digest != record->digest) {
    __builtin_trap();
  }
  return 0;
}
