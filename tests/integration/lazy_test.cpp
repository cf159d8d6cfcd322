// eStargz layers read in place from the real registry (issue 28): the layer's TOC and chunks by
// Range through the test stack's proxy, mounted with FUSE, and a registry that goes away while
// a container reads.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>
#include <variant>

#include "base/clock.h"
#include "puller/auth/authorizer.h"
#include "puller/http/curl_http_client.h"
#include "puller/lazy/lazy_host.h"
#include "puller/lazy/lazy_mount.h"
#include "puller/oci/sha256.h"
#include "puller/pipeline/pull_pipeline.h"
#include "puller/registry/registry_client.h"
#include "puller/snapshot/chain_id.h"
#include "puller/snapshot/overlay_mount.h"
#include "resolver/system_resolver.h"
#include "tests/integration/pull_fixture.h"
#include "tests/support/estargz_sample.h"
#include "tests/support/fixed_random.h"
#include "tests/support/process.h"

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
    http_options_ = options;
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
    if (!layer.ok())
      return nullptr;
    layer.value()->setReaderWindow(0, 0);  // a request per member: the tests count them
    return std::move(layer.value());
  }

  // A state dir with the stores a lazy host uses.
  struct HostState {
    puller::StateDir state;
    std::unique_ptr<puller::ContentStore> store;
    puller::ProvenanceStore provenance;
    puller::SnapshotStore snapshots;
    explicit HostState(const std::filesystem::path& root)
        : state(root),
          store((std::filesystem::create_directories(root),
                 puller::ContentStore::open(state.content()).value())),
          provenance(state.provenance()),
          snapshots(state.snapshots()) {
      EXPECT_TRUE(provenance.prepare().ok());
      EXPECT_TRUE(snapshots.prepare().ok());
    }
  };
  // What systemd's file descriptor store is to the service: the mounts' /dev/fuse files a
  // host keeps (LazyLayerHost::Options::keep_fd), and the names it let go of.
  struct Keeper {
    std::mutex mutex;
    std::map<std::string, UniqueFd> kept;
    std::vector<std::string> dropped;
    void attach(puller::LazyLayerHost::Options& options) {
      options.reader_window_max = 0;  // a request per member: the sample is one small layer
      options.keep_fd = [this](const std::string& name, int fd) {
        std::lock_guard lock(mutex);
        kept[name] = UniqueFd(::fcntl(fd, F_DUPFD_CLOEXEC, 3));
      };
      options.drop_fd = [this](const std::string& name) {
        std::lock_guard lock(mutex);
        kept.erase(name);
        dropped.push_back(name);
      };
    }
  };
  puller::PullRequest pullRequest(const puller::StateDir& state, puller::LazyLayerHost& host) {
    puller::PullRequest request;
    request.ref = puller::ImageRef::parse(anon() + "/test/estargz:v1").value();
    request.state = state;
    request.snapshots = true;
    request.privileged = true;
    request.http_options = http_options_;
    request.lazy = &host;
    return request;
  }

  // A lazy host over `at`, with the services its pulls use (made first: the host's registry
  // clients use them until it goes).
  struct ServingHost {
    puller::SharedPullParts shared;
    std::unique_ptr<puller::PullServices> services;
    std::unique_ptr<puller::LazyLayerHost> host;
  };
  std::unique_ptr<ServingHost> servingHost(HostState& at, puller::LazyLayerHost::Options options) {
    auto made = std::make_unique<ServingHost>();
    made->shared.store = at.store.get();
    made->services = std::make_unique<puller::PullServices>(*http_, clock_, random_, made->shared);
    made->host = std::make_unique<puller::LazyLayerHost>(at.state, *at.store, at.provenance,
                                                         at.snapshots, std::move(options));
    return made;
  }
  // test/estargz:marked (three eStargz layers) pulled through `serving`'s host.
  auto pullMarked(const HostState& at, ServingHost& serving) {
    puller::PullRequest request = pullRequest(at.state, *serving.host);
    request.ref = puller::ImageRef::parse(anon() + "/test/estargz:marked").value();
    return puller::runPull(request, *serving.services);
  }

  SystemClock clock_;
  resolver::SystemResolver resolver_;
  FixedRandom random_{0.5};
  puller::TokenCache tokens_{clock_};
  puller::HttpClientOptions http_options_;
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
                                                 {"lazy test", std::chrono::seconds(10), ""});
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
                                                 {"lazy test", std::chrono::seconds(5), ""});
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

// The whole path of a lazy pull: published at once over the layer read in place, read through
// an overlay as a container would, filled in the background only when the host lets it, stored
// and verified, promoted to an ordinary snapshot, and the FUSE layer retired.
TEST_F(LazyLayers, APullPublishesAtOnceThenTheFillPromotesTheImageToSnapshots) {
  HostState at(dest_.path() / "state");
  const puller::StateDir& state = at.state;
  auto& store = at.store;
  puller::ProvenanceStore& provenance = at.provenance;
  const puller::SnapshotStore& snapshots = at.snapshots;
  std::atomic<bool> fill_allowed{false};
  puller::LazyLayerHost::Options host_options;
  host_options.retry_after = std::chrono::milliseconds(200);
  host_options.reader_window_max = 0;  // a request per member: the sample is one small layer
  host_options.fill_turn = [&](const Context& ctx) -> Status {
    while (!fill_allowed) {
      RETURN_IF_ERROR(ctx.check());
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return {};
  };
  puller::SharedPullParts shared;
  shared.store = store.get();
  puller::PullServices services(*http_, clock_, random_, shared);
  // After the services: the host's registry client uses them until it goes.
  puller::LazyLayerHost host(state, *store, provenance, snapshots, std::move(host_options));

  puller::PullRequest request;
  request.ref = puller::ImageRef::parse(anon() + "/test/estargz:v1").value();
  request.state = state;
  request.snapshots = true;
  request.privileged = true;
  request.http_options = http_options_;
  request.lazy = &host;
  auto pulled = puller::runPull(request, services);
  ASSERT_TRUE(pulled.ok()) << pulled.error().describe();
  EXPECT_EQ(pulled->layers_in_place, 1);
  EXPECT_FALSE(store->contains(layer_.digest, layer_.size));

  const auto bundle = state.image(pulled->image.manifest.digest);
  auto mounts = [&] { return json::parse(readFile(bundle / "rootfs-mounts.json")); };
  auto layers = mounts()["layers"];
  ASSERT_EQ(layers.size(), 1u);
  EXPECT_TRUE(layers[0].value("inPlace", false)) << layers;
  // What a container's runtime does: the overlay rootfs-mounts.json describes.
  auto readThroughOverlay = [&](const std::string& file) {
    auto spec = puller::MountSpec::fromJson(mounts()["mounts"][0], "mounts[0]");
    EXPECT_TRUE(spec.ok()) << spec.error().message;
    const auto root = dest_.path() / "container-root";
    std::filesystem::create_directories(root);
    EXPECT_TRUE(puller::mountSpec(spec.value(), root).ok());
    puller::ScopedMount mounted(root);
    return readFile(root / file);
  };
  EXPECT_EQ(readThroughOverlay("bin/big"), EstargzSample::big());
  EXPECT_EQ(readThroughOverlay("etc/hosts"), EstargzSample::hosts());
  EXPECT_LT(bytesServed(anon(), layer_.digest.str()), layer_.size);
  // `pullagent images` says which images are still read in place.
  auto storage = [&] {
    auto listed =
        runProcess({PULLAGENT_BINARY, "images", "--state", state.root().string(), "--json"});
    EXPECT_EQ(listed.exit_code, 0) << listed.all();
    const auto images = json::parse(listed.out)["images"];
    EXPECT_EQ(images.size(), 1u) << listed.out;
    return images.empty() ? json() : images[0];
  };
  EXPECT_EQ(storage()["storage"], "lazy");
  EXPECT_EQ(storage()["layersInPlace"], 1);
  // `pullagent status` says how much of the layers read in place the host holds: some, not all.
  std::filesystem::create_directories(state.sites());
  writeFile(state.sites() / "web.json",
            json{{"site", "web"},
                 {"phase", "published"},
                 {"image", anon() + "/test/estargz:v1"},
                 {"published",
                  {{"digest", pulled->image.manifest.digest.str()}, {"path", bundle.string()}}}}
                .dump());
  auto lazyStatus = [&] {
    auto status = runProcess({PULLAGENT_BINARY, "status", "--state", state.root().string()});
    EXPECT_EQ(status.exit_code, 0) << status.all();
    const auto found = status.out.find("lazy, ");
    return found == std::string::npos
               ? std::string()
               : status.out.substr(found, status.out.find(" fetched", found) - found);
  };
  const std::string fetched = lazyStatus();
  ASSERT_FALSE(fetched.empty());
  const int percent = std::stoi(fetched.substr(6));
  EXPECT_GT(percent, 0) << fetched;
  EXPECT_LT(percent, 100) << fetched;
  // gc keeps what an image read in place uses: its bundle, and its layer's cache and mount.
  auto collected = runProcess({PULLAGENT_BINARY, "gc", "--state", state.root().string()});
  EXPECT_EQ(collected.exit_code, 0) << collected.all();
  EXPECT_EQ(storage()["storage"], "lazy");
  EXPECT_EQ(readThroughOverlay("etc/hosts"), EstargzSample::hosts());
  // `pullagent mount` mounts it over the layer read in place, and only over a layer this state
  // dir's lazy host serves now, whatever rootfs-mounts.json names.
  const auto mount_root = dest_.path() / "mounted";
  std::filesystem::create_directories(mount_root);
  auto mountCommand = [&] {
    return runProcess({PULLAGENT_BINARY, "mount", pulled->image.manifest.digest.str(),
                       mount_root.string(), "--state", state.root().string()});
  };
  {
    auto mounted = mountCommand();
    ASSERT_EQ(mounted.exit_code, 0) << mounted.all();
    puller::ScopedMount unmount(mount_root);
    EXPECT_EQ(readFile(mount_root / "etc/hosts"), EstargzSample::hosts());
  }
  const std::string honest = readFile(bundle / "rootfs-mounts.json");
  for (const auto& [named, refusal] : std::vector<std::pair<std::string, std::string>>{
           {(state.root() / "snapshots").string(), "is not one the lazy host"},
           {(state.lazy() / std::string(64, 'a') / std::string(64, 'b') / "mnt/layer").string(),
            "is not served now"}}) {
    auto tampered = json::parse(honest);
    tampered["layers"][0]["path"] = named;
    writeFile(bundle / "rootfs-mounts.json", tampered.dump());
    auto refused = mountCommand();
    EXPECT_NE(refused.exit_code, 0) << named;
    EXPECT_NE(refused.err.find(refusal), std::string::npos) << refused.all();
  }
  writeFile(bundle / "rootfs-mounts.json", honest);

  // Who may use the layer: its cache serves test/estargz alone. Another repository naming the
  // digest gets a layer of its own, every byte of it (the footer and TOC first) asked of its
  // own registry, though test/estargz's cache holds them: here a registry that does serve it.
  const puller::BlobSource other{request.ref.domain, "test/other"};
  ASSERT_NE(host.layerDir(other, layer_.digest),
            host.layerDir(puller::BlobSource{request.ref.domain, "test/estargz"}, layer_.digest));
  std::atomic<int> other_requests{0};
  auto other_root = host.serve(
      other, layer_,
      [&](int64_t first, int64_t last, const Context& ctx) {
        ++other_requests;
        return registry_->fetchRange(layer_, first, last, ctx);
      },
      nullptr, context());
  ASSERT_TRUE(other_root.ok()) << other_root.error().describe();
  EXPECT_GE(other_requests, 3);  // footer, TOC, prefetch: nothing taken from the other cache
  EXPECT_EQ(readFile(*other_root / "etc/hosts"), EstargzSample::hosts());
  // A repository whose registry does not hold the blob gets nothing at all.
  puller::RetryPolicy once;
  once.max_attempts = 1;
  puller::RegistryClient thief_registry(
      *http_, *authorizer_, clock_, random_, once,
      puller::RegistryEndpoint{"https", anon(), "test/not-estargz"});
  const puller::BlobSource thief{request.ref.domain, "test/not-estargz"};
  auto stolen = host.serve(
      thief, layer_,
      [&](int64_t first, int64_t last, const Context& ctx) {
        return thief_registry.fetchRange(layer_, first, last, ctx);
      },
      nullptr, context());
  EXPECT_FALSE(stolen.ok());
  // test/other's pull ends without publishing: its layer is retired, never filled.
  puller::LazyBundle other_pull;
  other_pull.source = other;
  other_pull.served = {layer_.digest};
  host.finishPull(std::move(other_pull), false);

  // The fill, once allowed: the blob stored and verified, the image switched to its snapshot
  // (what the container's next start mounts), the FUSE layer retired and its cache removed.
  fill_allowed = true;
  const Context wait{&clock_, {}, clock_.now() + std::chrono::seconds(60)};
  ASSERT_TRUE(host.settle(wait).ok());
  EXPECT_TRUE(store->contains(layer_.digest, layer_.size));
  layers = mounts()["layers"];
  ASSERT_EQ(layers.size(), 1u);
  EXPECT_FALSE(layers[0].value("inPlace", false)) << layers;
  EXPECT_EQ(layers[0]["path"],
            snapshots.layerDir(puller::chainIds(pulled->image.diff_ids)[0]).string());
  EXPECT_EQ(readThroughOverlay("bin/big"), EstargzSample::big());
  EXPECT_EQ(storage()["storage"], "overlay");
  EXPECT_EQ(lazyStatus(), "");  // promoted: nothing read in place
  const auto served_dir =
      host.layerDir(puller::BlobSource{request.ref.domain, "test/estargz"}, layer_.digest);
  const auto other_dir = host.layerDir(other, layer_.digest);
  for (int i = 0;
       i < 200 && (std::filesystem::exists(served_dir) || std::filesystem::exists(other_dir)); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(std::filesystem::exists(served_dir));
  EXPECT_FALSE(std::filesystem::exists(other_dir));
  EXPECT_TRUE(host.layers().empty());
  // Every byte came once: what readers fetched was not fetched again by the fill.
  EXPECT_LE(bytesServed(anon(), layer_.digest.str()), layer_.size + 4096);
}

// Overlayfs reads overlay's marks from a layer read in place as from its snapshot: the opaque
// directory hides the layer below's files, and a file's extended attributes come through. (The
// layer above has none: it answers "not supported" once, and the kernel asks it no more.)
TEST_F(LazyLayers, ALayerReadInPlaceCarriesItsOpaqueDirectoriesAndExtendedAttributes) {
  HostState at(dest_.path() / "state");
  puller::LazyLayerHost::Options host_options;
  host_options.reader_window_max = 0;
  host_options.fill_turn = [](const Context& ctx) -> Status {
    while (true) {  // never filled: every read below goes through the FUSE layer
      RETURN_IF_ERROR(ctx.check());
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  };
  auto serving = servingHost(at, std::move(host_options));
  puller::LazyLayerHost& host = *serving->host;
  auto pulled = pullMarked(at, *serving);
  ASSERT_TRUE(pulled.ok()) << pulled.error().describe();
  EXPECT_EQ(pulled->layers_in_place, 3);

  const auto bundle = at.state.image(pulled->image.manifest.digest);
  const json mounts = json::parse(readFile(bundle / "rootfs-mounts.json"));
  ASSERT_EQ(mounts["layers"].size(), 3u);
  for (const auto& layer : mounts["layers"])
    EXPECT_TRUE(layer.value("inPlace", false)) << mounts;
  auto spec = puller::MountSpec::fromJson(mounts["mounts"][0], "mounts[0]");
  ASSERT_TRUE(spec.ok()) << spec.error().message;
  const auto root = dest_.path() / "container-root";
  std::filesystem::create_directories(root);
  ASSERT_TRUE(puller::mountSpec(spec.value(), root).ok());
  puller::ScopedMount mounted(root);
  EXPECT_TRUE(std::filesystem::is_directory(root / "var/cache"));
  EXPECT_TRUE(std::filesystem::is_empty(root / "var/cache"));  // var/cache/old is hidden
  EXPECT_EQ(readFile(root / "usr/bin/ping"), "#!/bin/true\n");
  char value[64];
  ASSERT_EQ(::getxattr((root / "usr/bin/ping").c_str(), "user.note", value, sizeof value), 4)
      << std::strerror(errno);
  EXPECT_EQ(std::string(value, 4), "kept");
  EXPECT_EQ(::getxattr((root / "usr/bin/ping").c_str(), "security.capability", value, sizeof value),
            20);
  // Overlayfs asks the files of every layer but the last for trusted.overlay.metacopy: the top
  // layer, which has no xattrs, is asked once, the marked layer each time.
  EXPECT_EQ(readFile(root / "etc/motd"), "motd\n");
  EXPECT_EQ(readFile(root / "etc/issue"), "issue\n");
  const auto layers = host.layers();
  ASSERT_EQ(layers.size(), 3u);
  for (const auto& layer : layers) {
    if (layer.digest == pulled->image.layers.at(1).digest) {
      EXPECT_GT(layer.reads.xattr_requests, 1) << "marked";
    } else if (layer.digest == pulled->image.layers.at(2).digest) {
      EXPECT_EQ(layer.reads.xattr_requests, 1) << "top";
    }
  }
}

// A container reads while the fill runs. Storing a layer waits for reads to be quiet (it copies
// and hashes every byte once more, on the reader's cores); meanwhile the fill goes on with the
// other layers, so that none is left for the container to wait on. Once reads are quiet, every
// layer is stored and the image promoted.
TEST_F(LazyLayers, WhileAContainerReadsEveryLayerIsFetchedBeforeOneIsStored) {
  HostState at(dest_.path() / "state");
  std::atomic<bool> reading{false};
  puller::LazyLayerHost::Options host_options;
  host_options.reader_window_max = 0;
  // Reads every 20 ms are far from quiet even on a loaded machine.
  host_options.reader_quiet = std::chrono::seconds(1);
  host_options.reader_quiet_most = std::chrono::seconds(60);
  host_options.fill_turn = [&](const Context& ctx) -> Status {
    while (!reading) {  // the fill starts once the container reads
      RETURN_IF_ERROR(ctx.check());
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return {};
  };
  auto serving = servingHost(at, std::move(host_options));
  puller::LazyLayerHost& host = *serving->host;
  auto pulled = pullMarked(at, *serving);
  ASSERT_TRUE(pulled.ok()) << pulled.error().describe();
  ASSERT_EQ(pulled->layers_in_place, 3);
  const auto bundle = at.state.image(pulled->image.manifest.digest);
  auto inPlace = [&] {
    return json::parse(readFile(bundle / "rootfs-mounts.json"))["layers"][0].value("inPlace",
                                                                                   false);
  };
  ASSERT_TRUE(inPlace());

  // The top layer's etc/motd, read from its mount again and again, its pages dropped after each
  // read: every read is a READ (from held bytes after the first).
  const std::filesystem::path motd =
      json::parse(readFile(bundle / "rootfs-mounts.json"))["layers"][2]["path"].get<std::string>() +
      "/etc/motd";
  std::atomic<bool> stop{false};
  std::atomic<int> wrong{0};
  std::thread container([&] {
    while (!stop) {
      const UniqueFd fd(::open(motd.c_str(), O_RDONLY | O_CLOEXEC));
      char bytes[16];
      if (!fd.valid() || ::pread(fd.get(), bytes, sizeof bytes, 0) != 5 ||
          std::string(bytes, 5) != "motd\n")
        ++wrong;
      if (fd.valid())
        (void)::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_DONTNEED);
      reading = true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  auto allHeld = [&] {
    const auto layers = host.layers();
    return layers.size() == 3 && std::all_of(layers.begin(), layers.end(), [](const auto& layer) {
             return layer.held == layer.size;
           });
  };
  for (int i = 0; i < 400 && !allHeld(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  EXPECT_TRUE(allHeld());
  for (const auto& layer : host.layers())
    EXPECT_FALSE(layer.stored) << layer.digest.str() << " stored while a container reads";
  EXPECT_TRUE(inPlace());
  stop = true;
  container.join();
  EXPECT_EQ(wrong, 0);

  // Reads quiet: every layer stored, the image promoted.
  const Context wait{&clock_, {}, clock_.now() + std::chrono::seconds(60)};
  ASSERT_TRUE(host.settle(wait).ok());
  for (const auto& layer : pulled->image.layers)
    EXPECT_TRUE(at.store->contains(layer.digest, layer.size)) << layer.digest.str();
  EXPECT_FALSE(inPlace());
}

// Two pulls of one repository share its layer read in place; reads go through the newest pull's
// registry client (its credentials and route are the site's current ones, an older pull's may be
// revoked), and a layer no pull holds any more is retired without a fill.
TEST_F(LazyLayers, TheNewestPullOfALayerServesItsReadsThroughItsOwnClient) {
  HostState at(dest_.path() / "state");
  const puller::StateDir& state = at.state;
  auto& store = at.store;
  puller::ProvenanceStore& provenance = at.provenance;
  const puller::SnapshotStore& snapshots = at.snapshots;
  puller::LazyLayerHost::Options options;
  // No fill: this test is about reads.
  options.fill_turn = [](const Context&) -> Status {
    return makeError(ErrorCode::kUnavailable, "no fill in this test");
  };
  options.retry_after = std::chrono::milliseconds(100);
  options.reader_window_max = 0;  // a request per member: which client asks is counted
  puller::LazyLayerHost host(state, *store, provenance, snapshots, std::move(options));
  const puller::BlobSource source{anon(), "test/estargz"};
  std::atomic<int> first{0};
  std::atomic<int> second{0};
  auto counting = [&](std::atomic<int>& count) {
    return [&](int64_t begin, int64_t last, const Context& ctx) {
      ++count;
      return registry_->fetchRange(layer_, begin, last, ctx);
    };
  };
  auto root = host.serve(source, layer_, counting(first), nullptr, context());
  ASSERT_TRUE(root.ok()) << root.error().describe();
  const int first_before = first;
  auto again = host.serve(source, layer_, counting(second), nullptr, context());
  ASSERT_TRUE(again.ok()) << again.error().describe();
  EXPECT_EQ(*again, *root);
  EXPECT_EQ(readFile(*root / "bin/big"), EstargzSample::big());
  EXPECT_EQ(first, first_before);
  EXPECT_EQ(second, 3);  // bin/big's three chunks, through the newest pull's client

  // Both pulls end without publishing: the layer is retired, its cache removed.
  for (int pull = 0; pull < 2; ++pull) {
    puller::LazyBundle ended;
    ended.source = source;
    ended.served = {layer_.digest};
    host.finishPull(std::move(ended), false);
  }
  const auto dir = host.layerDir(source, layer_.digest);
  for (int i = 0; i < 200 && std::filesystem::exists(dir); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(std::filesystem::exists(dir));
  EXPECT_FALSE(store->contains(layer_.digest, layer_.size));  // never filled
}

// A service restart under systemd: the first host gives each mount's /dev/fuse file to the keeper
// (the test plays systemd's file descriptor store) and releases its mounts at the end. A
// container reading through its overlay meanwhile waits; the next host serves the mounts on,
// reads what is not held once a pull of the repository lends its route, and promotes the
// bundle the first host published. The keeper lets go once the layer is retired.
TEST_F(LazyLayers, ARestartedHostServesTheMountsOnAndPromotesWhatTheFirstPublished) {
  HostState at(dest_.path() / "state");
  Keeper keeper;
  auto withKeeper = [&](puller::LazyLayerHost::Options& options) {
    keeper.attach(options);
    options.retry_after = std::chrono::milliseconds(200);
  };
  puller::SharedPullParts shared;
  shared.store = at.store.get();
  puller::PullServices services(*http_, clock_, random_, shared);
  puller::LazyLayerHost::Options first_options;
  withKeeper(first_options);
  first_options.fill_turn = [](const Context&) -> Status {
    return makeError(ErrorCode::kUnavailable, "the first host never fills");
  };
  auto first = std::make_unique<puller::LazyLayerHost>(at.state, *at.store, at.provenance,
                                                       at.snapshots, std::move(first_options));
  auto request = pullRequest(at.state, *first);
  auto pulled = puller::runPull(request, services);
  ASSERT_TRUE(pulled.ok()) << pulled.error().describe();
  ASSERT_EQ(pulled->layers_in_place, 1);
  const auto bundle = at.state.image(pulled->image.manifest.digest);
  const puller::BlobSource source{request.ref.domain, "test/estargz"};
  const std::string name = puller::LazyLayerHost::keeperName(source, layer_.digest);
  {
    std::lock_guard lock(keeper.mutex);
    ASSERT_EQ(keeper.kept.count(name), 1u);
  }
  // A container runs over the image.
  auto spec = puller::MountSpec::fromJson(
      json::parse(readFile(bundle / "rootfs-mounts.json"))["mounts"][0], "mounts[0]");
  ASSERT_TRUE(spec.ok()) << spec.error().message;
  const auto root = dest_.path() / "container-root";
  std::filesystem::create_directories(root);
  ASSERT_TRUE(puller::mountSpec(spec.value(), root).ok());
  auto container = std::make_unique<puller::ScopedMount>(root);
  EXPECT_EQ(readFile(root / "etc/hosts"), EstargzSample::hosts());

  first.reset();  // the service stops for its restart
  std::string big;
  std::atomic<bool> done{false};
  std::thread reader([&] {
    big = readFile(root / "bin/big");
    done = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_FALSE(done.load());  // waiting, not failed

  puller::LazyLayerHost::Options second_options;
  withKeeper(second_options);
  {
    std::lock_guard lock(keeper.mutex);
    second_options.kept_fds = std::exchange(keeper.kept, {});
    // A file the keeper holds for a layer that is gone is let go.
    second_options.kept_fds.emplace(
        puller::LazyLayerHost::keeperName(
            source, puller::Digest::parse("sha256:" + std::string(64, 'a')).value()),
        UniqueFd(::open("/dev/null", O_RDONLY | O_CLOEXEC)));
  }
  auto second = std::make_unique<puller::LazyLayerHost>(at.state, *at.store, at.provenance,
                                                        at.snapshots, std::move(second_options));
  ASSERT_EQ(second->layers().size(), 1u);
  EXPECT_EQ(second->pendingBundles(), 1u);  // the first host's bundle, from its record
  {
    std::lock_guard lock(keeper.mutex);
    EXPECT_EQ(keeper.dropped.size(), 1u);
  }
  EXPECT_EQ(readFile(root / "etc/hosts"), EstargzSample::hosts());  // held: no route needed
  EXPECT_FALSE(done.load());  // bin/big is not held: it waits for a route

  // Another repository's route is never lent to this one's layer.
  std::atomic<int> other_fetches{0};
  second->lend(
      puller::BlobSource{request.ref.domain, "test/other"},
      [&](const puller::Descriptor& layer) -> puller::estargz::RangeFetch {
        return [&, layer](int64_t from, int64_t last, const Context& ctx) {
          ++other_fetches;
          return registry_->fetchRange(layer, from, last, ctx);
        };
      },
      nullptr);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_FALSE(done.load());
  EXPECT_EQ(other_fetches, 0);

  // The site's next pull: its image is published already, and this host serves its layer for
  // this repository: the pull holds the layer as it is (it is not pulled whole again), and lends
  // its route to it on the way.
  request.lazy = second.get();
  auto again = puller::runPull(request, services);
  ASSERT_TRUE(again.ok()) << again.error().describe();
  EXPECT_EQ(again->image.blobs_downloaded, 0);
  reader.join();
  EXPECT_EQ(big, EstargzSample::big());
  const Context wait{&clock_, {}, clock_.now() + std::chrono::seconds(60)};
  ASSERT_TRUE(second->settle(wait).ok());
  const auto layers = json::parse(readFile(bundle / "rootfs-mounts.json"))["layers"];
  ASSERT_EQ(layers.size(), 1u);
  EXPECT_FALSE(layers[0].value("inPlace", false)) << layers;
  EXPECT_FALSE(std::filesystem::exists(at.state.lazy() / "bundles" /
                                       (puller::Sha256::of(bundle.string()).hex() + ".json")));

  // The container reads on through the mount until it stops; then the layer is retired, its
  // directory removed and the keeper told to let go.
  EXPECT_EQ(readFile(root / "bin/big"), EstargzSample::big());
  container.reset();
  const auto dir = second->layerDir(source, layer_.digest);
  for (int i = 0; i < 200 && std::filesystem::exists(dir); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(std::filesystem::exists(dir));
  std::lock_guard lock(keeper.mutex);
  EXPECT_EQ(keeper.kept.count(name), 0u);
  EXPECT_NE(std::find(keeper.dropped.begin(), keeper.dropped.end(), name), keeper.dropped.end());
}

// A layer promoted and detached, which a running container still reads through, is served on
// across a restart too: its mount is gone from its directory, so the next host finds its
// connection by the number it recorded, and retires it once the container lets go.
TEST_F(LazyLayers, ADetachedLayerAContainerStillReadsIsServedOnAcrossARestart) {
  HostState at(dest_.path() / "state");
  Keeper keeper;
  puller::SharedPullParts shared;
  shared.store = at.store.get();
  puller::PullServices services(*http_, clock_, random_, shared);
  puller::LazyLayerHost::Options first_options;
  keeper.attach(first_options);
  auto first = std::make_unique<puller::LazyLayerHost>(at.state, *at.store, at.provenance,
                                                       at.snapshots, std::move(first_options));
  auto request = pullRequest(at.state, *first);
  auto pulled = puller::runPull(request, services);
  ASSERT_TRUE(pulled.ok()) << pulled.error().describe();
  ASSERT_EQ(pulled->layers_in_place, 1);
  const auto bundle = at.state.image(pulled->image.manifest.digest);
  // The container starts over the layer read in place, before the promotion.
  const json described = json::parse(readFile(bundle / "rootfs-mounts.json"));
  ASSERT_TRUE(described["layers"][0].value("inPlace", false));
  auto spec = puller::MountSpec::fromJson(described["mounts"][0], "mounts[0]");
  ASSERT_TRUE(spec.ok()) << spec.error().message;
  const auto root = dest_.path() / "container-root";
  std::filesystem::create_directories(root);
  ASSERT_TRUE(puller::mountSpec(spec.value(), root).ok());
  auto container = std::make_unique<puller::ScopedMount>(root);
  const Context wait{&clock_, {}, clock_.now() + std::chrono::seconds(60)};
  ASSERT_TRUE(first->settle(wait).ok());  // filled, promoted, and the layer detached
  const puller::BlobSource source{request.ref.domain, "test/estargz"};
  const auto mountpoint = first->layerDir(source, layer_.digest) / "mnt";
  struct stat mnt {};
  struct stat dir {};
  for (int i = 0; i < 200; ++i) {
    ASSERT_EQ(::stat(mountpoint.c_str(), &mnt), 0);
    ASSERT_EQ(::stat(mountpoint.parent_path().c_str(), &dir), 0);
    if (mnt.st_dev == dir.st_dev)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_EQ(mnt.st_dev, dir.st_dev);  // detached: nothing mounted at its directory any more
  first.reset();                      // the restart

  puller::LazyLayerHost::Options second_options;
  keeper.attach(second_options);
  {
    std::lock_guard lock(keeper.mutex);
    ASSERT_EQ(keeper.kept.size(), 1u);
    second_options.kept_fds = std::exchange(keeper.kept, {});
  }
  auto second = std::make_unique<puller::LazyLayerHost>(at.state, *at.store, at.provenance,
                                                        at.snapshots, std::move(second_options));
  EXPECT_EQ(second->layers().size(), 1u);
  EXPECT_EQ(readFile(root / "bin/big"), EstargzSample::big());
  EXPECT_EQ(readFile(root / "etc/hosts"), EstargzSample::hosts());
  container.reset();  // the container stops: the layer goes, and the keeper lets go
  const auto layer_dir = second->layerDir(source, layer_.digest);
  for (int i = 0; i < 200 && std::filesystem::exists(layer_dir); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(std::filesystem::exists(layer_dir));
  EXPECT_TRUE(second->layers().empty());
  std::lock_guard lock(keeper.mutex);
  EXPECT_TRUE(keeper.kept.empty());
}

// After a restart: the layers the earlier process served are dead mounts and unused caches, and
// go when the next host starts; a cache a live process holds stays.
TEST_F(LazyLayers, LayersAnEarlierProcessLeftAreRemovedAndAHeldOneStays) {
  const puller::StateDir state(dest_.path() / "state");
  const auto left = state.lazy() / "source" / "left";
  const auto held = state.lazy() / "source" / "held";
  for (const auto& dir : {left, held}) {
    std::filesystem::create_directories(dir / "cache");
    std::filesystem::create_directories(dir / "mnt");
    writeFile(dir / "cache/blob", "bytes");
    writeFile(dir / "cache/lock", "");
  }
  const int lock = ::open((held / "cache/lock").c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(lock, 0);
  ASSERT_EQ(::flock(lock, LOCK_EX), 0);
  auto store = puller::ContentStore::open(state.content()).value();
  puller::ProvenanceStore provenance(state.provenance());
  const puller::SnapshotStore snapshots(state.snapshots());
  {
    puller::LazyLayerHost host(state, *store, provenance, snapshots, {});
    EXPECT_FALSE(std::filesystem::exists(left));
    EXPECT_TRUE(std::filesystem::exists(held / "cache/blob"));
  }
  ::close(lock);
}

}  // namespace
}  // namespace pullagent::testing
