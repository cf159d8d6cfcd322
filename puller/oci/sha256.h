#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "puller/oci/digest.h"

namespace pullagent::puller {

// Incremental SHA-256 over OpenSSL EVP.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(Sha256&&) noexcept;
  Sha256& operator=(Sha256&&) noexcept;

  void update(std::string_view bytes);
  Digest finish();  // the hasher is reset afterwards

  static Digest of(std::string_view bytes);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The OpenSSL library in use, as it names itself ("OpenSSL 3.0.x ..."), for --version.
std::string opensslVersion();

}  // namespace pullagent::puller
