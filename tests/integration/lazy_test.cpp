// eStargz layers read in place from the real registry (issue 28): the layer's TOC and chunks by
// Range through the test stack's proxy, mounted with FUSE, and a registry that goes away while
// a container reads.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <variant>

#include "base/clock.h"
#include "puller/auth/authorizer.h"
#include "puller/http/curl_http_client.h"
#include "puller/lazy/lazy_mount.h"
#include "puller/registry/registry_client.h"
#include "resolver/system_resolver.h"
#include "tests/integration/pull_fixture.h"
#include "tests/support/estargz_sample.h"
#include "tests/support/fixed_random.h"

namespace pullagent::testing {
namespace {

using nlohmann::json;

class LazyLayers : public PullTest {
 protected:
  void SetUp() override {
    PullTest::SetUp();
    if (::geteuid() != 0 || ::access("/dev/fuse", R_OK | W_OK) != 0)
      GTEST_SKIP() << "needs root and /dev/fuse";
    puller::HttpClientOptions options;
    options.resolver = &resolver_;
    options.extra_ca_file = stack().ca();
    options.connect_timeout = std::chrono::seconds(5);
    options.stall_timeout = std::chrono::seconds(5);
    http_ = std::move(puller::CurlHttpClient::create(options).value());
    authorizer_ = std::make_unique<puller::Authorizer>(*http_, clock_, tokens_,
                                                       puller::RegistryCredentials{}, false);
    puller::RetryPolicy policy;
    policy.max_attempts = 2;
    policy.initial_backoff = std::chrono::milliseconds(100);
    registry_ = std::make_unique<puller::RegistryClient>(
        *http_, *authorizer_, clock_, random_, policy,
        puller::RegistryEndpoint{"https", anon(), "test/estargz"});
    auto manifest = registry_->fetchManifest("v1", std::nullopt, context());
    ASSERT_TRUE(manifest.ok()) << manifest.error().message;
    auto parsed = puller::parseManifest(manifest->bytes, manifest->media_type);
    ASSERT_TRUE(parsed.ok()) << parsed.error().message;
    auto* image = std::get_if<puller::ImageManifest>(&parsed.value());
    ASSERT_NE(image, nullptr) << manifest->media_type << " " << manifest->bytes;
    layer_ = image->layers.at(0);
  }
  std::string anon() { return stack().proxy("proxy_anon"); }
  Context context() { return Context{&clock_, {}, std::nullopt}; }
  std::unique_ptr<puller::estargz::LazyLayer> open() {
    auto layer = puller::estargz::LazyLayer::open(
        layer_,
        [this](int64_t first, int64_t last, const Context& ctx) {
          return registry_->fetchRange(layer_, first, last, ctx);
        },
        dest_.path() / "lazy-cache", context());
    EXPECT_TRUE(layer.ok()) << layer.error().message;
    return layer.ok() ? std::move(layer.value()) : nullptr;
  }

  SystemClock clock_;
  resolver::SystemResolver resolver_;
  FixedRandom random_{0.5};
  puller::TokenCache tokens_{clock_};
  std::unique_ptr<puller::CurlHttpClient> http_;
  std::unique_ptr<puller::Authorizer> authorizer_;
  std::unique_ptr<puller::RegistryClient> registry_;
  puller::Descriptor layer_;
};

TEST_F(LazyLayers, AContainerReadsTheLayerBeforeItIsOnDiskAndEveryRequestIsARange) {
  auto layer = open();
  ASSERT_NE(layer, nullptr);
  std::filesystem::create_directories(dest_.path() / "mnt");
  auto mount = puller::estargz::LazyMount::mount(*layer, dest_.path() / "mnt",
                                                 {"lazy test", std::chrono::seconds(10)});
  ASSERT_TRUE(mount.ok()) << mount.error().message;
  EXPECT_EQ(readFile(dest_.path() / "mnt/etc/hosts"), "127.0.0.1 localhost\n");
  EXPECT_EQ(readFile(dest_.path() / "mnt/bin/big"), EstargzSample::big());
  const std::string digest = layer_.digest.str();
  auto blob = requests(anon(), digest);
  ASSERT_FALSE(blob.empty());
  for (const auto& request : blob)
    EXPECT_TRUE(request["range"].is_string()) << request;
  // The footer, the TOC, one member for etc/hosts, three for bin/big: nothing twice.
  EXPECT_EQ(blob.size(), 6u);
  EXPECT_LE(bytesServed(anon(), digest), layer_.size);
}

TEST_F(LazyLayers, WhenTheRegistryGoesAwayFetchedFilesReadOnAndOthersFailFast) {
  auto layer = open();
  ASSERT_NE(layer, nullptr);
  ASSERT_TRUE(layer->prefetch(context()).ok());  // etc/hosts, before the landmark
  std::filesystem::create_directories(dest_.path() / "mnt");
  auto mount = puller::estargz::LazyMount::mount(*layer, dest_.path() / "mnt",
                                                 {"lazy test", std::chrono::seconds(5)});
  ASSERT_TRUE(mount.ok()) << mount.error().message;
  stack().setFaults(
      anon(),
      json::array(
          {{{"match", "/blobs/"}, {"times", 1000}, {"action", "status"}, {"status", 503}}}));
  EXPECT_EQ(readFile(dest_.path() / "mnt/etc/hosts"), "127.0.0.1 localhost\n");
  const auto started = std::chrono::steady_clock::now();
  EXPECT_EQ(readErrno(dest_.path() / "mnt/bin/big"), EIO);
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(10));
  EXPECT_GE(mount.value()->stats().read_errors, 1);
}

}  // namespace
}  // namespace pullagent::testing
