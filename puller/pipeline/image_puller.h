#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "base/context.h"
#include "puller/oci/manifest.h"
#include "puller/oci/pull_observer.h"
#include "puller/pipeline/blob_reuse.h"
#include "puller/pipeline/pull_demand.h"
#include "puller/reference/reference.h"
#include "puller/registry/registry_client.h"
#include "puller/snapshot/snapshot_store.h"
#include "puller/store/additional_store.h"
#include "puller/store/content_store.h"
#include "puller/store/provenance.h"

namespace pullagent::puller {

struct PullOptions {
  Platform platform{"linux", "amd64", "", ""};
  int concurrency = 4;  // blobs downloaded at once
  // Asked before the config or any layer is fetched, with what the pull will write; an error
  // ends the pull there (unset: every pull is admitted).
  AdmissionCheck admit;
  // Asked first of all, once the manifest is resolved (through its index, if any): whether the
  // host trusts the image (its signatures under the signature policy). An error ends the pull
  // before any blob is requested. Unset: no policy.
  std::function<Status(const std::optional<Descriptor>& index, const Descriptor& manifest,
                       const Context& ctx)>
      verify;
  // End the pull once `verify` accepted the image: no config or layer is fetched, the image
  // returned names them only (`pullagent verify`).
  bool stop_after_verify = false;
  // The reference taken at this digest instead of resolving its tag (a rollback to what the
  // tag resolved to before): the manifest or index is fetched by the digest, while `verify`
  // and everything else see the reference as it is, by its tag.
  std::optional<Digest> resolve_at;
};

// What a pull shares with the other pulls of the host, and how it proves it may.
struct BlobSharing {
  // Which source served and verified each blob, and what each layer decompresses to.
  ProvenanceStore* provenance = nullptr;
  SharedBlobProof proof = SharedBlobProof::kHead;
  // With snapshots, a layer whose snapshot is made already (at every place the image has it)
  // is not fetched when its blob is missing from the store: the publisher will reuse the
  // snapshot and never read the blob (the blobs of unpacked layers may have been discarded).
  const SnapshotStore* snapshots = nullptr;
  // Read-only stores the host provides, consulted before the network for the registries each
  // is configured for; their bytes verified as a download's, and counted as that registry's.
  const std::vector<AdditionalStore>* stores = nullptr;
  // Lazy pulling (issue 28): when every layer the pull would fetch carries an eStargz TOC
  // annotation, each is offered here before any is fetched; the directory returned is where it
  // is read in place, and the pull fetches none of it. Should one fail, the image is pulled
  // whole. Called for several layers at once, on threads of the pull. Unset: every layer is
  // fetched.
  std::function<Result<std::string>(const PulledImage& image, const Descriptor& layer,
                                    const Context& ctx)>
      serve_in_place;
  // Whether serve_in_place serves `layer` already for this pull's repository (a pull of it
  // served it, in this process or the one before): such a layer is offered even when the
  // store holds it too (the fill stored it, the promotion has not run yet).
  std::function<bool(const Descriptor& layer)> already_served;
};

// One image pull into a content store: manifest (through an index to the wanted platform),
// config, then the layers, `concurrency` at a time, each verified as it streams.
//
// A blob the host holds already (in the store, or unpacked into a snapshot) is used only under
// the reuse rules (ReuseRule): the pull's own registry must have served it to this repository
// before, or answer a HEAD for it in this repository, or serve it again. A digest is a name,
// not a proof: a manifest that names another tenant's blobs gets none of their bytes. A layer
// snapshot counts as the layer only through the agent's own record that the layer's blob
// decompresses to the image's diff_id.
class ImagePuller {
 public:
  // `sharing.provenance` null: nothing stored is trusted, every blob is downloaded again.
  ImagePuller(RegistryClient& registry, ContentStore& store, PullObserver* observer,
              BlobSharing sharing = {})
      : registry_(registry), store_(store), observer_(observer), sharing_(sharing) {}

  Result<PulledImage> pull(const ImageRef& ref, const PullOptions& options, const Context& ctx);

 private:
  Result<Descriptor> storeManifest(const FetchedManifest& fetched, const Context& ctx);
  Status fetchBlobs(const std::vector<Descriptor>& blobs, int concurrency, PulledImage& image,
                    const Context& ctx);
  // The layer blobs the image needs no bytes of: unpacked at every place it has them, through
  // the recorded diff_id of each.
  std::set<Digest> unpackedLayers(const PulledImage& image) const;
  // Fills image.in_place through sharing_.serve_in_place, for all the layers it needs or none.
  void serveInPlace(PulledImage& image, const Context& ctx);

  enum class Obtained { kDownloaded, kPresent, kNotNeeded };
  // Makes the blob usable by this pull: downloaded, or held already and allowed by the rules.
  Result<Obtained> obtain(const Descriptor& blob, bool unpacked, const Context& ctx);
  // True when an additional store configured for this pull's registry held the blob and its
  // bytes verified (now in the content store, its source recorded).
  Result<bool> fromAdditionalStore(const Descriptor& blob, const Context& ctx);
  void recordSource(const Digest& digest);

  RegistryClient& registry_;
  ContentStore& store_;
  PullObserver* observer_;
  BlobSharing sharing_;
  BlobSource source_;  // the pull's registry and repository
};

}  // namespace pullagent::puller
