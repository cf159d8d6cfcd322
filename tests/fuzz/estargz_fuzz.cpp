// What an eStargz layer's footer and table of contents say (lazy pulling reads them from a
// registry's bytes before anything else): the footer, the TOC's gzip member up to its digest
// check, and the TOC JSON with every entry's bounds and names; a TOC that parses is then made
// into the tree a FUSE mount shows (whiteouts, hardlinks, parents it leaves out) and every node
// of it looked up by name and stat'd.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "base/confined_root.h"
#include "puller/lazy/estargz_toc.h"
#include "puller/lazy/layer_tree.h"
#include "puller/oci/digest.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace pullagent::puller;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  constexpr uint64_t kTocOffset = uint64_t{1} << 40;
  static const Digest digest = Digest::parse("sha256:" + std::string(64, 'a')).value();
  (void)estargz::parseFooter(text, kTocOffset);
  (void)estargz::readToc(text, digest, kTocOffset);
  auto toc = estargz::parseTocJson(text, kTocOffset);
  if (toc) {
    const estargz::LayerTree tree(*toc);
    for (size_t i = 0; i < tree.size(); ++i) {
      (void)tree.attributes(i);
      (void)tree.xattrs(i);
    }
    for (const auto& entry : toc->entries)
      (void)tree.find(pullagent::ConfinedRoot::join(entry.path, entry.path.size()));
  }
  return 0;
}
