#pragma once

#include <algorithm>
#include <cstdint>

namespace pullagent::puller::estargz {

// What a layer's fetches say about the way to its registry: the bytes a second of the fastest
// large fetch, and the shortest round trip (another fetch's time less what its bytes take at
// that rate). Their product, the bandwidth-delay product, is how many bytes a request carries for
// about the price of its round trip alone: what a reader's request may be widened to without
// costing more than about one more round trip. Not thread-safe: the owner locks.
class LinkEstimate {
 public:
  void observe(uint64_t bytes, double seconds) {
    if (seconds <= 0)
      return;
    const double rate = static_cast<double>(bytes) / seconds;
    if (bytes >= kLargeBytes && rate > bytes_per_second_) {
      // The fastest fetch sets the rate; its own round trip is then nil by that measure, so it
      // says nothing about the round trip.
      bytes_per_second_ = rate;
      return;
    }
    const double transfer =
        bytes_per_second_ > 0 ? static_cast<double>(bytes) / bytes_per_second_ : 0;
    const double round_trip = std::max(0.0, seconds - transfer);
    round_trip_ = round_trip_ < 0 ? round_trip : std::min(round_trip_, round_trip);
  }

  // The bandwidth-delay product within [floor, ceiling]; floor until both are measured.
  uint64_t bytesPerRoundTrip(uint64_t floor, uint64_t ceiling) const {
    if (round_trip_ < 0 || bytes_per_second_ <= 0)
      return std::min(floor, ceiling);
    const double product = round_trip_ * bytes_per_second_;
    if (product >= static_cast<double>(ceiling))
      return ceiling;
    return std::clamp(static_cast<uint64_t>(product), std::min(floor, ceiling), ceiling);
  }

  // What the link carries in `seconds` at the measured rate; as good as unbounded before it is
  // measured.
  uint64_t bytesIn(double seconds) const {
    if (bytes_per_second_ <= 0)
      return UINT64_MAX;
    const double bytes = bytes_per_second_ * seconds;
    return bytes >= 1.8e19 ? UINT64_MAX : static_cast<uint64_t>(bytes);
  }

  // A fetch this large measures the rate; smaller ones are mostly round trip.
  static constexpr uint64_t kLargeBytes = uint64_t{256} << 10;

 private:
  double round_trip_ = -1;        // seconds
  double bytes_per_second_ = -1;  // of the fastest large fetch
};

}  // namespace pullagent::puller::estargz
