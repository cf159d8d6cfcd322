#include "puller/trust/public_key.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <limits>

namespace pullagent::puller {

struct PublicKey::Key {
  EVP_PKEY* pkey = nullptr;
  bool digest_sha256 = true;  // false for Ed25519: it signs the message itself
  ~Key() { EVP_PKEY_free(pkey); }
};

PublicKey::PublicKey(std::unique_ptr<Key> key, std::string description)
    : key_(std::move(key)), description_(std::move(description)) {}

PublicKey::~PublicKey() = default;

Result<std::shared_ptr<const PublicKey>> PublicKey::fromPem(std::string_view pem,
                                                            const std::string& where) {
  if (pem.size() > 64 * 1024 || pem.size() > static_cast<size_t>(std::numeric_limits<int>::max()))
    return makeError(ErrorCode::kInvalidArgument, where + ": a public key is not this large");
  // Whatever OpenSSL queues here is said in our error; nothing else may read it later.
  ERR_set_mark();
  struct PopMark {
    ~PopMark() { ERR_pop_to_mark(); }
  } pop_mark;
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  if (bio == nullptr)
    return makeError(ErrorCode::kInternal, where + ": out of memory");
  auto key = std::make_unique<Key>();
  key->pkey = PEM_read_bio_PUBKEY(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (key->pkey == nullptr) {
    return makeError(ErrorCode::kInvalidArgument,
                     where + ": not a PEM public key (\"-----BEGIN PUBLIC KEY-----\")");
  }
  std::string description;
  const int bits = EVP_PKEY_get_bits(key->pkey);
  if (EVP_PKEY_is_a(key->pkey, "EC")) {
    char group[64] = {};
    size_t length = 0;
    EVP_PKEY_get_utf8_string_param(key->pkey, "group", group, sizeof group, &length);
    const std::string curve(group, length);
    if (curve == "prime256v1" || curve == "P-256")
      description = "ECDSA P-256";
    else if (curve == "secp384r1" || curve == "P-384")
      description = "ECDSA P-384";
    else if (curve == "secp521r1" || curve == "P-521")
      description = "ECDSA P-521";
    else
      return makeError(ErrorCode::kUnsupported,
                       where + ": elliptic curve \"" + curve + "\" is not one of P-256/384/521");
  } else if (EVP_PKEY_is_a(key->pkey, "RSA")) {
    if (bits < 2048) {
      return makeError(ErrorCode::kUnsupported, where + ": an RSA key of " + std::to_string(bits) +
                                                    " bits is too weak (2048 at least)");
    }
    description = "RSA " + std::to_string(bits);
  } else if (EVP_PKEY_is_a(key->pkey, "ED25519")) {
    description = "Ed25519";
    key->digest_sha256 = false;
  } else {
    return makeError(ErrorCode::kUnsupported,
                     where + ": the key is neither ECDSA, RSA nor Ed25519");
  }
  // Defence in depth against a key that accepts forgeries (an RSA exponent of 1, a point off
  // its curve): the key comes from the host's admin, but a typo should not make it so.
  EVP_PKEY_CTX* check = EVP_PKEY_CTX_new(key->pkey, nullptr);
  const bool sound = check != nullptr && EVP_PKEY_public_check(check) == 1;
  EVP_PKEY_CTX_free(check);
  if (!sound)
    return makeError(ErrorCode::kInvalidArgument, where + ": the public key fails its checks");
  return std::shared_ptr<const PublicKey>(new PublicKey(std::move(key), std::move(description)));
}

Status PublicKey::verify(std::string_view message, std::string_view signature) const {
  ERR_set_mark();  // a failed check queues errors: they are ours, dropped below
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (ctx == nullptr) {
    ERR_pop_to_mark();
    return makeError(ErrorCode::kInternal, "out of memory");
  }
  const EVP_MD* md = key_->digest_sha256 ? EVP_sha256() : nullptr;
  int ok = EVP_DigestVerifyInit(ctx, nullptr, md, nullptr, key_->pkey);
  if (ok == 1) {
    ok = EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(signature.data()),
                          signature.size(), reinterpret_cast<const unsigned char*>(message.data()),
                          message.size());
  }
  EVP_MD_CTX_free(ctx);
  ERR_pop_to_mark();
  if (ok != 1) {
    return makeError(ErrorCode::kUntrusted,
                     "the signature does not verify with the " + description_ + " key");
  }
  return {};
}

}  // namespace pullagent::puller
