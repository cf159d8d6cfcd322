#include "puller/pipeline/image_puller.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "puller/lazy/estargz_toc.h"
#include "puller/snapshot/chain_id.h"

namespace pullagent::puller {
namespace {

constexpr int kMaxIndexDepth = 4;

}  // namespace

Result<Descriptor> ImagePuller::storeManifest(const FetchedManifest& fetched, const Context& ctx) {
  if (auto status = store_.putBlob(fetched.digest, fetched.bytes, ctx); !status) {
    return status.error();
  }
  Descriptor descriptor;
  descriptor.media_type = fetched.media_type;
  descriptor.digest = fetched.digest;
  descriptor.size = static_cast<int64_t>(fetched.bytes.size());
  return descriptor;
}

Result<PulledImage> ImagePuller::pull(const ImageRef& ref, const PullOptions& options,
                                      const Context& ctx) {
  PulledImage image;
  source_ = BlobSource{ref.domain, ref.repository};
  const std::optional<Digest> at = options.resolve_at ? options.resolve_at : ref.digest;
  auto fetched = registry_.fetchManifest(at ? at->str() : ref.manifestReference(), at, ctx);
  if (!fetched)
    return fetched.error();

  ImageManifest manifest;
  for (int depth = 0;; ++depth) {
    auto document = parseManifest(fetched->bytes, fetched->media_type);
    if (!document)
      return document.error().context("manifest of " + ref.str());
    ASSIGN_OR_RETURN(auto stored, storeManifest(fetched.value(), ctx));
    if (auto* parsed = std::get_if<ImageManifest>(&document.value())) {
      manifest = std::move(*parsed);
      image.manifest = stored;
      image.manifest.media_type = manifest.media_type;
      break;
    }
    const auto& index = std::get<ImageIndex>(document.value());
    if (!image.index) {
      image.index = stored;
      image.index->media_type = index.media_type;
    }
    if (depth == kMaxIndexDepth) {
      return makeError(
          ErrorCode::kProtocol,
          "indexes nested deeper than " + std::to_string(kMaxIndexDepth) + " in " + ref.str());
    }
    auto selected = selectPlatform(index, options.platform);
    if (!selected)
      return selected.error().context(ref.str());
    if (selected->size > kMaxManifestSize) {
      return makeError(ErrorCode::kResourceExhausted,
                       "manifest " + selected->digest.str() + " is larger than the 4 MiB limit");
    }
    spdlog::info("{}: platform {} is manifest {}", ref.str(), options.platform.str(),
                 selected->digest.str());
    fetched = registry_.fetchManifest(selected->digest.str(), selected->digest, ctx);
    if (!fetched)
      return fetched.error();
    if (static_cast<int64_t>(fetched->bytes.size()) != selected->size) {
      return makeError(ErrorCode::kDigestMismatch,
                       "manifest " + selected->digest.str() + " size differs from its index entry");
    }
  }

  image.config = manifest.config;
  image.layers = manifest.layers;
  if (options.verify)
    RETURN_IF_ERROR(options.verify(image.index, image.manifest, ctx));
  if (options.stop_after_verify)
    return image;
  if (observer_ != nullptr)
    observer_->onManifest(image.manifest, image.layers);
  if (options.admit) {
    RETURN_IF_ERROR(options.admit(predictDemand(image.manifest, manifest.config, manifest.layers,
                                                store_, sharing_.provenance, sharing_.snapshots)));
  }

  if (auto status = fetchBlobs({manifest.config}, 1, image, ctx); !status)
    return status.error();
  ASSIGN_OR_RETURN(auto config_bytes, store_.readBlob(manifest.config.digest, kMaxConfigSize));
  auto config = parseImageConfig(config_bytes);
  if (!config)
    return config.error().context("config " + manifest.config.digest.str());
  if (config->diff_ids.size() != manifest.layers.size()) {
    return makeError(ErrorCode::kProtocol, "image config lists " +
                                               std::to_string(config->diff_ids.size()) +
                                               " diff_ids but the manifest has " +
                                               std::to_string(manifest.layers.size()) + " layers");
  }
  image.diff_ids = config->diff_ids;
  Platform want = options.platform.normalized();
  if (!config->os.empty() && (config->os != want.os || config->architecture != want.architecture)) {
    spdlog::warn("{} is built for {}/{}, not {}", ref.str(), config->os, config->architecture,
                 want.str());
  }

  // Before the publisher starts: it reads the layers served in place through their mounts.
  if (sharing_.serve_in_place)
    serveInPlace(image, ctx);
  if (observer_ != nullptr)
    observer_->onImageResolved(image);
  if (auto status = fetchBlobs(manifest.layers, options.concurrency, image, ctx); !status) {
    return status.error();
  }
  return image;
}

std::set<Digest> ImagePuller::unpackedLayers(const PulledImage& image) const {
  std::set<Digest> unpacked;
  if (sharing_.snapshots == nullptr || sharing_.provenance == nullptr)
    return unpacked;
  const auto chain = chainIds(image.diff_ids);
  std::set<Digest> needed;  // at some place of the image, not unpacked yet
  for (size_t i = 0; i < image.layers.size() && i < chain.size(); ++i) {
    // The config's diff_id selects the snapshot only where the agent itself saw this blob
    // decompress to it.
    const auto record = sharing_.provenance->read(image.layers[i].digest);
    const bool mapped = record && record->diff_id == image.diff_ids[i];
    (mapped && sharing_.snapshots->has(chain[i]) ? unpacked : needed)
        .insert(image.layers[i].digest);
  }
  for (const auto& digest : needed)
    unpacked.erase(digest);
  return unpacked;
}

void ImagePuller::serveInPlace(PulledImage& image, const Context& ctx) {
  const std::set<Digest> unpacked = unpackedLayers(image);
  std::vector<const Descriptor*> wanted;
  for (const auto& layer : image.layers) {
    if (unpacked.count(layer.digest) != 0)
      continue;
    const bool served = sharing_.already_served && sharing_.already_served(layer);
    if (!served && store_.contains(layer.digest, layer.size)) {
      // Stored but not unpacked: it would be unpacked over the layers below it, which must
      // then be snapshots too.
      spdlog::info("layer {} is stored but not unpacked: the image is pulled whole",
                   layer.digest.str());
      return;
    }
    if (layer.annotations.count(std::string(estargz::kTocDigestAnnotation)) == 0) {
      // A layer that cannot be read in place would be unpacked over the ones below it, which
      // then must be snapshots too: the image is pulled whole.
      spdlog::info("layer {} is not eStargz: the image is pulled whole", layer.digest.str());
      return;
    }
    wanted.push_back(&layer);
  }
  // A layer the manifest names twice is served once.
  std::vector<const Descriptor*> unique;
  std::set<Digest> seen;
  for (const Descriptor* layer : wanted) {
    if (seen.insert(layer->digest).second)
      unique.push_back(layer);
  }
  // Each layer's footer and TOC are fetched, checked and mounted on a thread of its own, a few at
  // a time: the image is published after the slowest layer, not after all of them in turn.
  constexpr size_t kServeThreads = 4;
  std::vector<std::optional<Result<std::string>>> served(unique.size());
  std::atomic<size_t> next{0};
  {
    std::vector<std::jthread> threads;
    for (size_t t = 0; t < std::min(kServeThreads, unique.size()); ++t) {
      threads.emplace_back([&] {
        for (size_t i = next++; i < unique.size(); i = next++) {
          // An exception must not leave a thread (that ends the process, and every mount the
          // host serves with it): it fails this layer, and so the image is pulled whole.
          try {
            served[i] = sharing_.serve_in_place(image, *unique[i], ctx);
          } catch (const std::exception& thrown) {
            served[i] = makeError(ErrorCode::kInternal,
                                  std::string("serving the layer in place: ") + thrown.what());
          }
        }
      });
    }
  }
  for (size_t i = 0; i < unique.size(); ++i) {
    if (!*served[i]) {
      spdlog::warn("layer {} cannot be read in place ({}): the image is pulled whole",
                   unique[i]->digest.str(), served[i]->error().describe());
      image.in_place.clear();
      return;
    }
    image.in_place.emplace(unique[i]->digest, std::move(served[i]->value()));
  }
}

void ImagePuller::recordSource(const Digest& digest) {
  if (sharing_.provenance == nullptr)
    return;
  if (auto status = sharing_.provenance->addSource(digest, source_); !status) {
    // The blob is good; without its record, the next pull proves it again.
    spdlog::warn("blob {}: its source is not recorded: {}", digest.str(),
                 status.error().describe());
  }
}

namespace {

// A blob this pull could not get from its registry. The same text whether or not the host holds
// the blob (and whatever rule applied): what a pull's error says must not tell a tenant what
// other tenants hold.
Error notServed(const Error& error) {
  Error wrapped = error;
  wrapped.message +=
      "; a blob is used only once the pull's own registry serves it or shows it "
      "holds it (a digest names bytes, it does not grant them)";
  return wrapped;
}

}  // namespace

Result<bool> ImagePuller::fromAdditionalStore(const Descriptor& blob, const Context& ctx) {
  if (sharing_.stores == nullptr)
    return false;
  bool shown = false;  // the registry answered a HEAD for the blob in this repository
  for (const auto& additional : *sharing_.stores) {
    if (!additional.serves(source_.registry))
      continue;
    // The host's store vouches for the bytes, the registry for the right to them: the blob is
    // used only once the pull's own registry shows it holds it in this repository (one HEAD,
    // as for a blob another repository of the registry served), so that a store seeded with
    // many tenants' images gives none of them to a manifest that merely names their digests.
    if (!shown) {
      if (auto head = registry_.headBlob(blob, ctx); !head) {
        RETURN_IF_ERROR(ctx.check());
        return false;  // fetched as if no store held it (and refused as such)
      }
      shown = true;
    }
    auto copied = copyFromStore(additional, blob, store_, ctx, [&] { recordSource(blob.digest); });
    if (copied && *copied) {
      spdlog::info("blob {}: from the additional store {} (verified)", blob.digest.str(),
                   additional.root.string());
      return true;
    }
    RETURN_IF_ERROR(ctx.check());
    if (!copied) {
      spdlog::warn(
          "blob {}: the additional store {} does not hold it whole ({}): fetched from "
          "{} instead",
          blob.digest.str(), additional.root.string(), copied.error().message, source_.registry);
    }
  }
  return false;
}

Result<ImagePuller::Obtained> ImagePuller::obtain(const Descriptor& blob, bool unpacked,
                                                  const Context& ctx) {
  bool present = store_.contains(blob.digest, blob.size);
  if (!present && !unpacked) {
    ASSIGN_OR_RETURN(const bool from_store, fromAdditionalStore(blob, ctx));
    if (from_store)
      return Obtained::kPresent;
    bool fetched = false;
    RegistryClient::BlobFetchOptions options;
    options.fetched_here = &fetched;
    options.on_verified = [&] { recordSource(blob.digest); };
    if (auto status = registry_.fetchBlob(blob, store_, observer_, ctx, options); !status) {
      RETURN_IF_ERROR(ctx.check());
      return notServed(status.error());
    }
    if (fetched)
      return Obtained::kDownloaded;
    // Another pull stored it while this one waited for the ingest: the rules below decide, as
    // for any blob held already (a pull of the same repository recorded its source).
    present = true;
  }
  const std::optional<ProvenanceRecord> record =
      sharing_.provenance != nullptr ? sharing_.provenance->read(blob.digest) : std::nullopt;
  const ReuseRule rule = reuseRule(record, source_, sharing_.proof);
  const Obtained held = present ? Obtained::kPresent : Obtained::kNotNeeded;
  switch (rule) {
    case ReuseRule::kSameRepository:
      return held;
    case ReuseRule::kHeadInRepository: {
      auto status = registry_.headBlob(blob, ctx);
      if (status) {
        spdlog::info("blob {}: {} holds it too (HEAD), the stored copy serves", blob.digest.str(),
                     source_.str());
        recordSource(blob.digest);
        return held;
      }
      RETURN_IF_ERROR(ctx.check());
      // Not shown to be there: asked for the bytes, as if the host held nothing.
      spdlog::info("blob {}: {} did not show it holds it ({}): fetched instead", blob.digest.str(),
                   source_.str(), status.error().message);
      break;
    }
    case ReuseRule::kFetchAgain:
      spdlog::info("blob {}: held on this host, not from {}: fetched again to prove it",
                   blob.digest.str(), source_.str());
      break;
  }
  bool fetched = false;
  RegistryClient::BlobFetchOptions options;
  options.even_if_stored = true;
  // The proof comes from the origin: a mirror (a host-wide _default cache among them) may serve
  // any blob it cached for anyone by its digest alone.
  options.origin_only = true;
  options.fetched_here = &fetched;
  options.on_verified = [&] { recordSource(blob.digest); };
  // A pull of the same repository (another site, a sidecar) may be proving it right now: once
  // it has, its record serves this pull too.
  options.proven_meanwhile = [&] {
    auto now =
        sharing_.provenance != nullptr ? sharing_.provenance->read(blob.digest) : std::nullopt;
    return now && now->servedBy(source_);
  };
  if (auto status = registry_.fetchBlob(blob, store_, observer_, ctx, options); !status) {
    RETURN_IF_ERROR(ctx.check());
    return notServed(status.error());
  }
  return fetched ? Obtained::kDownloaded : held;  // else proven by the other pull meanwhile
}

Status ImagePuller::fetchBlobs(const std::vector<Descriptor>& blobs, int concurrency,
                               PulledImage& image, const Context& ctx) {
  // The same blob may appear twice in a manifest (empty layers): fetch each digest once.
  std::vector<Descriptor> unique;
  std::set<Digest> seen;
  for (const auto& blob : blobs) {
    if (seen.insert(blob.digest).second)
      unique.push_back(blob);
  }

  // First failure stops the siblings: they share a stop source chained to the caller's.
  std::stop_source siblings;
  std::stop_callback forward(ctx.stop, [&] { siblings.request_stop(); });
  Context worker_ctx = ctx;
  worker_ctx.stop = siblings.get_token();

  const std::set<Digest> unpacked = unpackedLayers(image);
  std::mutex mutex;
  std::optional<Error> first_error;
  std::atomic<size_t> next{0};
  auto work = [&] {
    while (true) {
      size_t i = next.fetch_add(1);
      if (i >= unique.size() || siblings.stop_requested())
        return;
      const Descriptor& blob = unique[i];
      if (image.in_place.count(blob.digest) != 0) {
        std::lock_guard lock(mutex);
        ++image.blobs_not_needed;
        if (observer_ != nullptr)
          observer_->onBlobDone(blob, true);
        continue;
      }
      auto obtained = obtain(blob, unpacked.count(blob.digest) != 0, worker_ctx);
      std::lock_guard lock(mutex);
      if (!obtained) {
        if (!first_error)
          first_error = obtained.error();
        siblings.request_stop();
        return;
      }
      const bool present = *obtained == Obtained::kPresent;
      const bool not_needed = *obtained == Obtained::kNotNeeded;
      if (not_needed) {
        spdlog::info("blob {}: not fetched, its layer is unpacked already", blob.digest.str());
        ++image.blobs_not_needed;
      } else if (present) {
        ++image.blobs_present;
      } else {
        ++image.blobs_downloaded;
        image.bytes_downloaded += blob.size;
      }
      if (observer_ != nullptr)
        observer_->onBlobDone(blob, present || not_needed);
    }
  };
  size_t threads =
      std::clamp<size_t>(static_cast<size_t>(std::max(concurrency, 1)), 1, unique.size());
  std::vector<std::jthread> pool;
  for (size_t t = 1; t < threads; ++t)
    pool.emplace_back(work);
  work();
  pool.clear();  // joins
  if (first_error)
    return *first_error;
  return ctx.check();
}

}  // namespace pullagent::puller
