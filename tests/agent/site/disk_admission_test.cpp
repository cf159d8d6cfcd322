#include "agent/site/disk_admission.h"

#include <gtest/gtest.h>

#include <limits>

#include "puller/oci/sha256.h"
#include "tests/support/temp_dir.h"

namespace pullagent::agent {
namespace {

constexpr int64_t kMB = 1000 * 1000;

puller::PullDemand demandOf(int64_t download, int64_t unpack) {
  puller::PullDemand demand;
  demand.manifest = puller::Sha256::of("manifest");
  demand.download_bytes = download;
  demand.unpack_source_bytes = unpack;
  demand.layers = 2;
  demand.layers_to_download = 2;
  demand.layers_to_unpack = 2;
  return demand;
}

// The room is set by a state dir budget of 10 MB (whatever the host's disk holds); the unpack
// ratio is the default until learned.
class Admission : public ::testing::Test {
 protected:
  Admission() {
    marks_.high_bytes = 10 * kMB;
    marks_.low_bytes = 8 * kMB;
  }
  testing::TempDir dir_{"pullagent-admission"};
  puller::StateDir state_{dir_.path()};
  puller::DiskWatermarks marks_;
  puller::DiskMeter meter_;
  int refused_ = 0;
};

TEST_F(Admission, PullsSideBySideReserveTheirRoomUntilTheyEnd) {
  DiskAdmission admission(state_, marks_, meter_, [this] { ++refused_; });
  auto first = admission.admit(demandOf(2 * kMB, kMB));  // 2 + 3 (ratio 3.0)
  ASSERT_TRUE(first.ok()) << first.error().message;
  EXPECT_EQ(*first, 5 * kMB);
  // 6 MB would fit the budget alone, not beside the first: the same room is not counted twice.
  auto second = admission.admit(demandOf(3 * kMB, kMB));
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.error().message.find("does not fit"), std::string::npos);
  EXPECT_EQ(refused_, 1);
  admission.release(*first);
  EXPECT_TRUE(admission.admit(demandOf(3 * kMB, kMB)).ok());
}

TEST_F(Admission, WaitsWhenEvictionCanMakeRoomAndRefusesWhatCannotFitEvenThen) {
  DiskAdmission admission(state_, marks_, meter_, [this] { ++refused_; });
  admission.setEvictable(20 * kMB);
  auto waits = admission.admit(demandOf(15 * kMB, 0));
  ASSERT_FALSE(waits.ok());
  EXPECT_EQ(waits.error().message.rfind(kWaitingForSpace, 0), 0u) << waits.error().message;
  EXPECT_TRUE(admission.waiting());
  EXPECT_GE(admission.takeWanted(), 5 * kMB);
  EXPECT_FALSE(admission.waiting());

  auto refused = admission.admit(demandOf(std::numeric_limits<int64_t>::max(), 0));
  ASSERT_FALSE(refused.ok());
  const std::string message = refused.error().message;
  for (const char* part :
       {"does not fit", "needs", "free", "20.0 MB evictable", "the published image stays"}) {
    EXPECT_NE(message.find(part), std::string::npos) << part << ": " << message;
  }
  EXPECT_EQ(refused_, 1);
  EXPECT_EQ(admission.admit(demandOf(0, 0)).value(), 0);  // nothing to write: nothing asked
}

}  // namespace
}  // namespace pullagent::agent
