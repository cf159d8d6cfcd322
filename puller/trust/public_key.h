#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "base/error.h"

namespace pullagent::puller {

// A public key a signature policy trusts (PEM SubjectPublicKeyInfo, as `cosign generate-key-pair`
// writes cosign.pub): ECDSA P-256/P-384/P-521, RSA of at least 2048 bits, or Ed25519. A
// signature is checked as cosign makes it: ECDSA (ASN.1 DER) and RSA PKCS #1 v1.5 over the
// SHA-256 of the message, Ed25519 over the message itself.
class PublicKey {
 public:
  // `where` names the key's origin in errors ("containers policy …: default[0].keyPath").
  static Result<std::shared_ptr<const PublicKey>> fromPem(std::string_view pem,
                                                          const std::string& where);
  ~PublicKey();
  PublicKey(const PublicKey&) = delete;
  PublicKey& operator=(const PublicKey&) = delete;

  // Ok when `signature` is this key's over `message`; kUntrusted otherwise.
  Status verify(std::string_view message, std::string_view signature) const;
  // "ECDSA P-256", "RSA 3072", "Ed25519".
  const std::string& describe() const { return description_; }

 private:
  struct Key;
  explicit PublicKey(std::unique_ptr<Key> key, std::string description);
  std::unique_ptr<Key> key_;
  std::string description_;
};

}  // namespace pullagent::puller
