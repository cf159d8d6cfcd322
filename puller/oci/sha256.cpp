#include "puller/oci/sha256.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <stdexcept>

#include "base/unique_handle.h"

namespace pullagent::puller {

using EvpMdCtx = UniqueHandle<EVP_MD_CTX, EVP_MD_CTX_free>;

struct Sha256::Impl {
  EvpMdCtx ctx{EVP_MD_CTX_new()};
  void reset() {
    // Failing here means OpenSSL is broken or out of memory: a start-up class failure.
    if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) {
      throw std::runtime_error("OpenSSL SHA-256 initialisation failed");
    }
  }
};

Sha256::Sha256() : impl_(std::make_unique<Impl>()) {
  impl_->reset();
}
Sha256::~Sha256() = default;
Sha256::Sha256(Sha256&&) noexcept = default;
Sha256& Sha256::operator=(Sha256&&) noexcept = default;

void Sha256::update(std::string_view bytes) {
  EVP_DigestUpdate(impl_->ctx.get(), bytes.data(), bytes.size());
}

Digest Sha256::finish() {
  unsigned char raw[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_DigestFinal_ex(impl_->ctx.get(), raw, &length);
  impl_->reset();
  return Digest::fromSha256Bytes({reinterpret_cast<const char*>(raw), length});
}

Digest Sha256::of(std::string_view bytes) {
  Sha256 hasher;
  hasher.update(bytes);
  return hasher.finish();
}

std::string opensslVersion() {
  return OpenSSL_version(OPENSSL_VERSION);
}

}  // namespace pullagent::puller
