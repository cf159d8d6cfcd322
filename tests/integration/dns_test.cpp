// The VNet resolver (c-ares) against a real DNS server: dnsmasq on loopback serving a private
// zone the way Azure private DNS does (registry CNAME -> privatelink name -> private address).
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

#include "resolver/ares_resolver.h"
#include "tests/support/dnsmasq.h"
#include "tests/support/fake_clock.h"
#include "tests/support/process.h"

namespace pullagent::testing {
namespace {

const std::vector<std::string> kPrivateZone = {
    "--cname=myreg.azurecr.io,myreg.privatelink.azurecr.io",
    "--host-record=myreg.privatelink.azurecr.io,127.0.0.5",
    "--cname=myreg.westus.data.azurecr.io,myreg.westus.data.privatelink.azurecr.io",
    "--host-record=myreg.westus.data.privatelink.azurecr.io,127.0.0.6",
    "--cname=hop1.test,hop2.test",
    "--cname=hop2.test,hop3.test",
    "--cname=hop3.test,final.test",
    "--host-record=final.test,10.1.2.3",
    "--host-record=v6only.test,fd00::7",
    "--host-record=public.azurecr.io,20.45.122.144",
    "--local-ttl=30"};

class VnetDns : public ::testing::Test {
 protected:
  Result<std::vector<std::string>> resolve(resolver::AresOptions options, const std::string& host) {
    auto resolver = resolver::AresResolver::create(std::move(options), clock_);
    if (!resolver)
      return resolver.error();
    Context ctx{&clock_, {}, std::nullopt};
    return (*resolver)->resolve(host, ctx);
  }
  FakeClock clock_;
};

TEST_F(VnetDns, FollowsThePrivateLinkCnameToThePrivateAddress) {
  Dnsmasq dns(kPrivateZone);
  auto addresses = resolve(Dnsmasq::options({dns.server()}), "myreg.azurecr.io");
  ASSERT_TRUE(addresses.ok()) << addresses.error().message;
  EXPECT_EQ(*addresses, std::vector<std::string>{"127.0.0.5"});
  auto data = resolve(Dnsmasq::options({dns.server()}), "myreg.westus.data.azurecr.io");
  ASSERT_TRUE(data.ok());
  EXPECT_EQ(*data, std::vector<std::string>{"127.0.0.6"});
}

TEST_F(VnetDns, CnameChainOfSeveralHops) {
  Dnsmasq dns(kPrivateZone);
  auto addresses = resolve(Dnsmasq::options({dns.server()}), "hop1.test");
  ASSERT_TRUE(addresses.ok()) << addresses.error().message;
  EXPECT_EQ(*addresses, std::vector<std::string>{"10.1.2.3"});
}

TEST_F(VnetDns, AaaaOnlyName) {
  Dnsmasq dns(kPrivateZone);
  auto addresses = resolve(Dnsmasq::options({dns.server()}), "v6only.test");
  ASSERT_TRUE(addresses.ok()) << addresses.error().message;
  EXPECT_EQ(*addresses, std::vector<std::string>{"fd00::7"});
}

TEST_F(VnetDns, NxdomainNamesTheHostAndTheServer) {
  Dnsmasq dns(kPrivateZone);
  auto addresses = resolve(Dnsmasq::options({dns.server()}), "other.azurecr.io");
  ASSERT_FALSE(addresses.ok());
  EXPECT_EQ(addresses.error().code, ErrorCode::kNotFound);
  const std::string& message = addresses.error().message;
  EXPECT_NE(message.find("other.azurecr.io"), std::string::npos) << message;
  EXPECT_NE(message.find(dns.server().str()), std::string::npos) << message;
  EXPECT_NE(message.find("NXDOMAIN"), std::string::npos) << message;
}

TEST_F(VnetDns, AlternateServerAnswersWhenThePrimaryDoesNot) {
  Dnsmasq dns(kPrivateZone);
  SilentServer primary;
  auto addresses =
      resolve(Dnsmasq::options({{"127.0.0.1", primary.port()}, dns.server()}), "myreg.azurecr.io");
  ASSERT_TRUE(addresses.ok()) << addresses.error().message;
  EXPECT_EQ(*addresses, std::vector<std::string>{"127.0.0.5"});
}

TEST_F(VnetDns, NoServerAnsweringIsATimeoutNamingBoth) {
  SilentServer primary;
  SilentServer alternate;
  auto addresses =
      resolve(Dnsmasq::options({{"127.0.0.1", primary.port()}, {"127.0.0.1", alternate.port()}}),
              "myreg.azurecr.io");
  ASSERT_FALSE(addresses.ok());
  EXPECT_EQ(addresses.error().code, ErrorCode::kTimeout) << addresses.error().message;
  EXPECT_NE(addresses.error().message.find("127.0.0.1:" + std::to_string(primary.port()) +
                                           ",127.0.0.1:" + std::to_string(alternate.port())),
            std::string::npos)
      << addresses.error().message;
}

TEST_F(VnetDns, AnswersAreCachedForTheirTtlOnly) {
  auto dns = std::make_unique<Dnsmasq>(kPrivateZone);
  auto resolver = resolver::AresResolver::create(Dnsmasq::options({dns->server()}), clock_);
  Context ctx{&clock_, {}, std::nullopt};
  ASSERT_TRUE((*resolver)->resolve("myreg.azurecr.io", ctx).ok());
  dns->stop();  // from now on every query fails
  clock_.advance(std::chrono::seconds(29));
  EXPECT_TRUE((*resolver)->resolve("myreg.azurecr.io", ctx).ok());  // within the TTL
  clock_.advance(std::chrono::seconds(2));
  EXPECT_FALSE((*resolver)->resolve("myreg.azurecr.io", ctx).ok());  // expired: asked again
}

// Answers every query with SERVFAIL (RCODE 2), as a resolver whose upstream is broken does.
class ServfailServer {
 public:
  ServfailServer() : fd_(bindLoopbackUdp(port_)) {
    thread_ = std::jthread([this](std::stop_token stop) {
      while (!stop.stop_requested()) {
        pollfd fd{fd_, POLLIN, 0};
        if (::poll(&fd, 1, 50) <= 0)
          continue;
        unsigned char packet[512];
        sockaddr_in from{};
        socklen_t from_length = sizeof from;
        ssize_t n = ::recvfrom(fd_, packet, sizeof packet, 0, reinterpret_cast<sockaddr*>(&from),
                               &from_length);
        if (n < 12)
          continue;
        packet[2] = static_cast<unsigned char>(0x80 | (packet[2] & 0x01));  // QR, keep RD
        packet[3] = 0x82;                                                   // RA, SERVFAIL
        for (int i = 6; i < 12; ++i)
          packet[i] = 0;  // no answer, authority or additional records
        ::sendto(fd_, packet, static_cast<size_t>(n), 0, reinterpret_cast<sockaddr*>(&from),
                 from_length);
      }
    });
  }
  ~ServfailServer() {
    thread_.request_stop();
    thread_.join();
    ::close(fd_);
  }
  int port() const { return port_; }

 private:
  int port_ = 0;  // before fd_: the constructor's bind sets it
  int fd_ = -1;
  std::jthread thread_;
};

TEST_F(VnetDns, ServfailIsReportedAsSuch) {
  ServfailServer broken;
  auto addresses = resolve(Dnsmasq::options({{"127.0.0.1", broken.port()}}), "myreg.azurecr.io");
  ASSERT_FALSE(addresses.ok());
  EXPECT_EQ(addresses.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(addresses.error().message.find("SERVFAIL"), std::string::npos)
      << addresses.error().message;
}

TEST(DnsServer, ParsesAddressesWithAndWithoutPorts) {
  EXPECT_EQ(resolver::DnsServer::parse("10.0.0.4")->str(), "10.0.0.4:53");
  EXPECT_EQ(resolver::DnsServer::parse("10.0.0.4:5353")->str(), "10.0.0.4:5353");
  EXPECT_EQ(resolver::DnsServer::parse("fd00::4")->str(), "[fd00::4]:53");
  EXPECT_EQ(resolver::DnsServer::parse("[fd00::4]:5353")->str(), "[fd00::4]:5353");
  for (const char* bad : {"dns.example.com", "10.0.0.4:0", "10.0.0.4:99999", "[fd00::4", "10.0.0"})
    EXPECT_FALSE(resolver::DnsServer::parse(bad).ok()) << bad;
}

TEST(DnsServer, PublicAddresses) {
  EXPECT_TRUE(resolver::isPublicAddress("20.45.122.144"));
  EXPECT_TRUE(resolver::isPublicAddress("2603:1030::1"));
  for (const char* inside :
       {"10.0.0.7", "172.16.4.1", "192.168.1.1", "127.0.0.5", "fd00::7", "::1"})
    EXPECT_FALSE(resolver::isPublicAddress(inside)) << inside;
}

}  // namespace
}  // namespace pullagent::testing
