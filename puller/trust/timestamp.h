#pragma once

#include <ctime>
#include <string>
#include <string_view>

#include "base/error.h"
#include "puller/trust/certificate.h"

namespace pullagent::puller {

// What an RFC 3161 timestamp token attests: that `message` existed at `time`, give or take
// `accuracy` seconds, by the word of `authority` (the TSA certificate's subject).
struct Timestamp {
  std::time_t time = 0;
  std::time_t accuracy = 0;
  std::string authority;
  // The TSA's chain as verified: its certificate first, the tsa store's certificate last (whose
  // revocation services a verifier asks about the certificates below it).
  CertificateChain chain;
};

// Verifies an RFC 3161 TimeStampToken (DER: a CMS SignedData whose content is a TSTInfo) over
// `message`, as the Notary Project countersigns a signature: the message imprint is the hash of
// `message` (by the token's own hash algorithm, SHA-256/384/512), the token's signature is its
// TSA certificate's, and that certificate (timeStamping its only extended key usage, marked
// critical) chains to one of `roots` at the time the token states. kUntrusted errors say which.
// The chain's revocation is the caller's to ask (notary_signature.cpp).
Result<Timestamp> verifyTimestamp(std::string_view token, std::string_view message,
                                  const CertificateChain& roots);

}  // namespace pullagent::puller
