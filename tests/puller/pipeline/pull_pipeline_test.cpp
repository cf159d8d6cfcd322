// The pull pipeline on fakes: ImagePuller over a RegistryClient whose HttpClient is an in-memory
// registry, and ImagePublisher unpacking into a temporary directory. Fast, and each failure
// points at one room (the integration suite runs the same against real registries).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <map>
#include <mutex>
#include <set>

#include "puller/oci/sha256.h"
#include "puller/pipeline/image_puller.h"
#include "puller/pipeline/pull_pipeline.h"
#include "puller/unpack/image_publisher.h"
#include "tests/support/fake_clock.h"
#include "tests/support/fixed_random.h"
#include "tests/support/layer_builder.h"
#include "tests/support/temp_dir.h"

namespace pullagent::puller {
namespace {

BlobSharing sharingOf(ProvenanceStore& provenance) {
  BlobSharing sharing;
  sharing.provenance = &provenance;
  return sharing;
}

using nlohmann::json;

// A registry in memory for repository "app" at reg.io: manifests by tag and digest, blobs by
// digest, streamed through on_head/on_body as libcurl does. Counts what was asked for.
class MemoryRegistry final : public HttpClient {
 public:
  Digest putBlob(const std::string& bytes) {
    Digest digest = Sha256::of(bytes);
    std::lock_guard lock(mutex_);
    blobs_[digest.str()] = bytes;
    return digest;
  }
  Digest putManifest(const std::string& tag, const std::string& bytes, std::string media_type) {
    Digest digest = Sha256::of(bytes);
    std::lock_guard lock(mutex_);
    manifests_[tag] = {bytes, media_type};
    manifests_[digest.str()] = {bytes, std::move(media_type)};
    return digest;
  }
  void corruptBlob(const Digest& digest) {
    std::lock_guard lock(mutex_);
    blobs_[digest.str()][0] ^= 0x55;
  }
  int blobRequests() const { return blob_requests_; }
  int manifestRequests(const std::string& method) const {
    std::lock_guard lock(mutex_);
    return method == "HEAD" ? manifest_heads_ : manifest_gets_;
  }

  Result<HttpResponse> send(const HttpRequest& request, const Context&) override {
    const std::string prefix = "https://reg.io/v2/app/";
    if (request.url.rfind(prefix, 0) != 0)
      return makeError(ErrorCode::kInternal, "unexpected request " + request.url);
    const std::string path = request.url.substr(prefix.size());
    std::lock_guard lock(mutex_);
    HttpResponse response;
    if (path.rfind("manifests/", 0) == 0) {
      ++(request.method == "HEAD" ? manifest_heads_ : manifest_gets_);
      auto it = manifests_.find(path.substr(10));
      if (it == manifests_.end())
        return notFound();
      response.status = 200;
      response.headers.push_back({"Content-Type", it->second.second});
      // As the distribution registry answers: the digest on GET and HEAD, no body on HEAD.
      response.headers.push_back({"Docker-Content-Digest", Sha256::of(it->second.first).str()});
      if (request.method != "HEAD")
        response.body = it->second.first;
      return response;
    }
    ++blob_requests_;
    auto it = blobs_.find(path.substr(6));
    if (path.rfind("blobs/", 0) != 0 || it == blobs_.end())
      return notFound();
    response.status = 200;
    if (request.on_head)
      RETURN_IF_ERROR(request.on_head(response));
    RETURN_IF_ERROR(request.on_body(it->second));
    return response;
  }

 private:
  static HttpResponse notFound() {
    HttpResponse response;
    response.status = 404;
    response.body = R"({"errors":[{"code":"MANIFEST_UNKNOWN","message":"unknown"}]})";
    return response;
  }
  mutable std::mutex mutex_;
  std::map<std::string, std::pair<std::string, std::string>> manifests_;
  std::map<std::string, std::string> blobs_;
  std::atomic<int> blob_requests_{0};
  int manifest_heads_ = 0;
  int manifest_gets_ = 0;
};

// Records the events of a pull.
class EventLog final : public PullObserver {
 public:
  void onManifest(const Descriptor&, const std::vector<Descriptor>& layers) override {
    std::lock_guard lock(mutex_);
    manifest_layers = static_cast<int>(layers.size());
  }
  void onImageResolved(const PulledImage&) override { resolved = true; }
  void onBlobDone(const Descriptor& blob, bool was_present) override {
    std::lock_guard lock(mutex_);
    (was_present ? present : downloaded).insert(blob.digest.str());
  }
  void onPullDone() override { pull_done = true; }

  std::mutex mutex_;
  int manifest_layers = -1;
  std::atomic<bool> resolved{false};
  std::atomic<bool> pull_done{false};
  std::set<std::string> downloaded;
  std::set<std::string> present;
};

class PullPipelineTest : public ::testing::Test {
 protected:
  // An image of two gzip layers (the second deletes a file of the first), published under
  // `tag` through an OCI index with an amd64 and an arm64 entry.
  void pushImage(const std::string& tag, const std::string& app_text,
                 bool corrupt_app_layer = false) {
    const std::string base = testing::LayerBuilder()
                                 .dir("etc")
                                 .file("etc/os-release", "ID=test\n")
                                 .file("etc/obsolete", "old\n")
                                 .tar();
    const std::string app = testing::LayerBuilder()
                                .dir("app")
                                .file("app/index.html", app_text)
                                .file("etc/.wh.obsolete", "")
                                .tar();
    json layers = json::array();
    json diff_ids = json::array();
    for (const std::string* layer : {&base, &app}) {
      const std::string& tar = *layer;
      const std::string gz = testing::gzipBytes(tar);
      const Digest digest = registry_.putBlob(gz);
      if (corrupt_app_layer && layer == &app)
        registry_.corruptBlob(digest);
      layers.push_back({{"mediaType", "application/vnd.oci.image.layer.v1.tar+gzip"},
                        {"digest", digest.str()},
                        {"size", gz.size()}});
      diff_ids.push_back(Sha256::of(tar).str());
    }
    const std::string config = json{{"architecture", "amd64"},
                                    {"os", "linux"},
                                    {"config", {{"Cmd", {"/app/run"}}, {"Env", {"PATH=/usr/bin"}}}},
                                    {"rootfs", {{"type", "layers"}, {"diff_ids", diff_ids}}}}
                                   .dump();
    const Digest config_digest = registry_.putBlob(config);
    const std::string manifest = json{
        {"schemaVersion", 2},
        {"mediaType", std::string(media_type::kOciManifest)},
        {"config",
         {{"mediaType", std::string(media_type::kOciConfig)},
          {"digest", config_digest.str()},
          {"size", config.size()}}},
        {"layers", layers}}.dump();
    const Digest manifest_digest =
        registry_.putManifest(tag + "-amd64", manifest, std::string(media_type::kOciManifest));
    const std::string index = json{{"schemaVersion", 2},
                                   {"mediaType", std::string(media_type::kOciIndex)},
                                   {"manifests",
                                    {{{"mediaType", std::string(media_type::kOciManifest)},
                                      {"digest", Sha256::of("not here").str()},
                                      {"size", 10},
                                      {"platform", {{"architecture", "arm64"}, {"os", "linux"}}}},
                                     {{"mediaType", std::string(media_type::kOciManifest)},
                                      {"digest", manifest_digest.str()},
                                      {"size", manifest.size()},
                                      {"platform", {{"architecture", "amd64"}, {"os", "linux"}}}}}}}
                                  .dump();
    index_digest_ = registry_.putManifest(tag, index, std::string(media_type::kOciIndex));
    manifest_digest_ = manifest_digest;
  }

  ImageRef ref(const std::string& tag) { return ImageRef::parse("reg.io/app:" + tag).value(); }

  // A pull of its own, as a command makes one.
  Result<PullOutcome> pull(const PullRequest& request) {
    PullServices own(registry_, clock_, random_);
    return runPull(request, own);
  }
  PullRequest job(const std::string& tag) {
    PullRequest job;
    job.ref = ref(tag);
    job.state = StateDir(dir_.path() / "state");
    job.runtime.seccomp_profile.reset();
    return job;
  }

  testing::TempDir dir_;
  testing::FakeClock clock_;
  testing::FixedRandom random_{0.5};
  MemoryRegistry registry_;
  Digest manifest_digest_;
  Digest index_digest_;  // what the tag resolves to
  // What ImagePuller runs on, for the tests of the puller alone.
  std::unique_ptr<ContentStore> store_ = ContentStore::open(dir_.path() / "content").value();
  ProvenanceStore provenance_{dir_.path() / "provenance"};
  BlobSharing sharing_ = sharingOf(provenance_);
  TokenCache tokens_{clock_};
  Authorizer authorizer_{registry_, clock_, tokens_, {}, false};
  RegistryClient client_{registry_, authorizer_,   clock_,
                         random_,   RetryPolicy{}, {"https", "reg.io", "app"}};
};

TEST_F(PullPipelineTest, PullerSelectsThePlatformAndFetchesEachBlobOnce) {
  pushImage("v1", "hello\n");
  EventLog events;
  ImagePuller puller(client_, *store_, &events, sharing_);

  auto image = puller.pull(ref("v1"), PullOptions{}, clock_.context());
  ASSERT_TRUE(image.ok()) << image.error().message;
  EXPECT_EQ(image->manifest.digest, manifest_digest_);
  ASSERT_TRUE(image->index.has_value());
  EXPECT_EQ(image->layers.size(), 2u);
  EXPECT_EQ(image->diff_ids.size(), 2u);
  EXPECT_EQ(image->blobs_downloaded, 3);  // the config and two layers
  EXPECT_EQ(events.manifest_layers, 2);
  EXPECT_TRUE(events.resolved);
  EXPECT_EQ(events.downloaded.size(), 3u);
  for (const auto& layer : image->layers)
    EXPECT_TRUE(store_->contains(layer.digest, layer.size));
  const int requests = registry_.blobRequests();  // the config and two layers
  EXPECT_EQ(requests, 3);

  EventLog again;
  ImagePuller second(client_, *store_, &again, sharing_);
  auto repeat = second.pull(ref("v1"), PullOptions{}, clock_.context());
  ASSERT_TRUE(repeat.ok()) << repeat.error().message;
  EXPECT_EQ(repeat->blobs_downloaded, 0);
  EXPECT_EQ(repeat->blobs_present, 3);
  EXPECT_EQ(again.present.size(), 3u);
  EXPECT_EQ(registry_.blobRequests(), requests);  // nothing fetched again
}

TEST_F(PullPipelineTest, StoredBlobsWithoutARecordOfTheirSourceAreFetchedAgain) {
  pushImage("v1", "hello\n");
  ImagePuller puller(client_, *store_, nullptr, sharing_);
  ASSERT_TRUE(puller.pull(ref("v1"), PullOptions{}, clock_.context()).ok());
  const int requests = registry_.blobRequests();
  // The records lost (or never written): the stored copies prove nothing.
  std::filesystem::remove_all(provenance_.dir());
  ImagePuller second(client_, *store_, nullptr, sharing_);
  auto repeat = second.pull(ref("v1"), PullOptions{}, clock_.context());
  ASSERT_TRUE(repeat.ok()) << repeat.error().message;
  EXPECT_EQ(repeat->blobs_downloaded, 3);
  EXPECT_EQ(repeat->blobs_present, 0);
  EXPECT_EQ(registry_.blobRequests(), 2 * requests);
  // Fetched again and verified, they are recorded for this repository once more.
  for (const auto& layer : repeat->layers)
    EXPECT_TRUE(provenance_.read(layer.digest)->servedBy({"reg.io", "app"}));
}

TEST_F(PullPipelineTest, AnUnknownPlatformIsNotFound) {
  pushImage("v1", "hello\n");
  ImagePuller puller(client_, *store_, nullptr);
  PullOptions options;
  options.platform = Platform{"linux", "s390x", "", ""};
  auto image = puller.pull(ref("v1"), options, clock_.context());
  ASSERT_FALSE(image.ok());
  EXPECT_EQ(image.error().code, ErrorCode::kNotFound) << image.error().message;
}

TEST_F(PullPipelineTest, RunPullPublishesABundleInTheStateDir) {
  pushImage("v1", "hello\n");
  EventLog events;
  PullRequest request = job("v1");
  request.observers.push_back(&events);
  auto outcome = pull(request);
  ASSERT_TRUE(outcome.ok()) << outcome.error().message;
  const auto image_dir = dir_.path() / "state" / "images" / manifest_digest_.hex();
  EXPECT_EQ(testing::readFile(image_dir / "rootfs" / "app" / "index.html"), "hello\n");
  EXPECT_EQ(testing::readFile(image_dir / "rootfs" / "etc" / "os-release"), "ID=test\n");
  EXPECT_FALSE(std::filesystem::exists(image_dir / "rootfs" / "etc" / "obsolete"));
  EXPECT_TRUE(std::filesystem::exists(image_dir / kPublishedMarker));
  auto config = json::parse(testing::readFile(image_dir / "config.json"));
  EXPECT_EQ(config["process"]["args"], json({"/app/run"}));
  EXPECT_TRUE(events.pull_done);
  EXPECT_GT(outcome->transferred, 0);

  // The same image again: already published, nothing downloaded or unpacked.
  auto again = pull(job("v1"));
  ASSERT_TRUE(again.ok()) << again.error().message;
  EXPECT_NE(again->published.find("already published"), std::string::npos) << again->published;
  EXPECT_EQ(again->transferred, 0);
}

// A refresh: one HEAD while the tag stays; once it moves, a pull of what changed.
TEST_F(PullPipelineTest, ARefreshCostsOneHeadUntilTheTagMoves) {
  pushImage("moving", "v1\n");
  auto first = pull(job("moving"));
  ASSERT_TRUE(first.ok()) << first.error().message;
  ASSERT_TRUE(first->image.index.has_value());
  EXPECT_EQ(first->image.index->digest, index_digest_);
  const Digest first_manifest = manifest_digest_;

  const int blobs_before = registry_.blobRequests();
  const int gets_before = registry_.manifestRequests("GET");
  PullRequest check = job("moving");
  check.unless_tag_resolves_to = index_digest_;
  auto unchanged = pull(check);
  ASSERT_TRUE(unchanged.ok()) << unchanged.error().message;
  EXPECT_TRUE(unchanged->unchanged);
  EXPECT_EQ(registry_.manifestRequests("HEAD"), 1);
  EXPECT_EQ(registry_.manifestRequests("GET"), gets_before);
  EXPECT_EQ(registry_.blobRequests(), blobs_before);

  // The tag moves to an image whose app layer (and so config and manifests) changed.
  pushImage("moving", "v2\n");
  auto moved = pull(check);
  ASSERT_TRUE(moved.ok()) << moved.error().message;
  EXPECT_FALSE(moved->unchanged);
  EXPECT_EQ(moved->image.manifest.digest, manifest_digest_);
  EXPECT_NE(manifest_digest_, first_manifest);
  EXPECT_EQ(moved->image.blobs_present, 1);               // the base layer
  EXPECT_EQ(registry_.blobRequests(), blobs_before + 2);  // the app layer and the config
  EXPECT_EQ(testing::readFile(dir_.path() / "state" / "images" / manifest_digest_.hex() / "rootfs" /
                              "app" / "index.html"),
            "v2\n");

  // A reference pinned by digest costs one HEAD as well: its registry still serves it (the
  // daemon checks such a site at start when its image waits for a route, LazyLayerHost).
  PullRequest pinned = job("moving");
  pinned.ref = ImageRef::parse("reg.io/app@" + manifest_digest_.str()).value();
  pinned.unless_tag_resolves_to = manifest_digest_;
  const int heads_before = registry_.manifestRequests("HEAD");
  const int blobs_pinned = registry_.blobRequests();
  auto by_digest = pull(pinned);
  ASSERT_TRUE(by_digest.ok()) << by_digest.error().message;
  EXPECT_TRUE(by_digest->unchanged);
  EXPECT_EQ(registry_.manifestRequests("HEAD"), heads_before + 1);
  EXPECT_EQ(registry_.blobRequests(), blobs_pinned);
}

// An image published without a record of its sources (before they were recorded, or its records
// lost) is not "unchanged" on a refresh: its blobs are proven again first.
TEST_F(PullPipelineTest, ARefreshOfAnImageWithoutProvenanceProvesItAgain) {
  pushImage("moving", "v1\n");
  ASSERT_TRUE(pull(job("moving")).ok());
  std::filesystem::remove_all(dir_.path() / "state" / "provenance");
  const int blobs_before = registry_.blobRequests();
  PullRequest check = job("moving");
  check.unless_tag_resolves_to = index_digest_;
  auto proven = pull(check);
  ASSERT_TRUE(proven.ok()) << proven.error().message;
  EXPECT_FALSE(proven->unchanged);
  EXPECT_EQ(registry_.blobRequests(), blobs_before + 3);  // config and both layers, again
  auto unchanged = pull(check);
  ASSERT_TRUE(unchanged.ok()) << unchanged.error().message;
  EXPECT_TRUE(unchanged->unchanged);
  EXPECT_EQ(registry_.blobRequests(), blobs_before + 3);
}

TEST_F(PullPipelineTest, ALayerThatFailsVerificationLeavesTheTargetAsItWas) {
  pushImage("v1", "first\n");
  PullRequest first = job("v1");
  first.target = dir_.path() / "site-rootfs";
  first.form = PublishForm::kRootfs;
  ASSERT_TRUE(pull(first).ok());
  ASSERT_EQ(testing::readFile(dir_.path() / "site-rootfs" / "app" / "index.html"), "first\n");

  pushImage("v2", "second\n", /*corrupt_app_layer=*/true);
  PullRequest second = job("v2");
  second.target = dir_.path() / "site-rootfs";
  second.form = PublishForm::kRootfs;
  second.retries = 1;
  auto outcome = pull(second);
  ASSERT_FALSE(outcome.ok());
  EXPECT_EQ(outcome.error().code, ErrorCode::kDigestMismatch) << outcome.error().message;
  EXPECT_EQ(testing::readFile(dir_.path() / "site-rootfs" / "app" / "index.html"), "first\n");
}

}  // namespace
}  // namespace pullagent::puller
