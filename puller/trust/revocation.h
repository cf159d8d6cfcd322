#pragma once

#include <ctime>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>

#include "base/context.h"
#include "puller/http/http_client.h"
#include "puller/trust/certificate.h"

namespace pullagent::puller {

struct RevocationResult {
  enum class Status { kGood, kRevoked, kUnknown };
  Status status = Status::kGood;
  std::string detail;  // for kRevoked and kUnknown: which certificate, and what was asked
};

// What OCSP responders and CRLs answered, kept while the answer is current: until its
// nextUpdate (an OCSP answer without one: a week after it was made, as it counts), and at most
// a day, so that a signature decided again at every publish asks its services once per answer,
// not once per pull. Per (certificate, issuer, source URL), by the certificates' DER bytes.
// Only answers that decide (good, revoked) are kept; a source that failed is asked again.
// Shared by the pulls of a process.
class RevocationCache {
 public:
  struct Answer {
    RevocationResult::Status status = RevocationResult::Status::kGood;
    std::string why;
    std::time_t until = 0;
    // Revoked: when the key became invalid, when the source says (an invalidityDate).
    std::optional<std::time_t> invalid_since;
  };
  std::optional<Answer> find(const std::string& key, std::time_t now) const;
  void keep(const std::string& key, Answer answer, std::time_t now);
  size_t size() const;

 private:
  static constexpr size_t kMaxEntries = 4096;
  mutable std::mutex mutex_;
  std::map<std::string, Answer> answers_;
};

// Whether a code signing chain is revoked, as the Notary Project checks it (notation-core-go's
// revocation package). `chain` runs from the leaf to the certificate the trust store holds (the
// anchor, trusted as it is, and the root of every OCSP answer's verification): each
// certificate below the anchor is asked of the OCSP responders it names (POST, RFC 6960; the
// first two), and, when it names none or none gives a good answer, of the CRLs at its
// distribution points (RFC 5280; the first two). A certificate that names neither cannot be
// revoked and passes; one that names a service this cannot ask (ldap, say), or that no source
// answers for, is kUnknown. Answers are hostile input: an OCSP response must be signed by the
// issuer (or a responder it delegated to) and current; a CRL signed by the issuer, for it, and
// current. Each request is bounded in size (64 KiB for OCSP, 8 MiB for a CRL) and in time (10 s,
// and the pull's deadline); no credential is ever sent.
//
// A revoked answer is read as notation-core-go reads it: with `signing_time` (an authentic one)
// before the invalidityDate the answer gives, the certificate was good when it signed; a CRL's
// certificateHold is revoked, its removeFromCRL is not.
//
// The URLs come from the certificates: call this only for a chain the trust store vouches for,
// whose issuing CA chose them. With `cache`, answers still current are taken from it.
struct RevocationQuery {
  std::time_t now = 0;
  std::optional<std::time_t> signing_time;
  RevocationCache* cache = nullptr;
};
RevocationResult checkRevocation(HttpClient& http, const CertificateChain& chain,
                                 const RevocationQuery& query, const Context& ctx);

}  // namespace pullagent::puller
