#pragma once

#include <ctime>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "puller/oci/manifest.h"
#include "puller/trust/notation_policy.h"
#include "puller/trust/revocation.h"

namespace pullagent::puller {

struct NotaryOutcome {
  // Why the signature does not satisfy the statement ("integrity: …", "authenticity: …"), or
  // nothing when it does.
  std::optional<std::string> failure;
  std::string failed_check;  // its check's name ("integrity", "authenticity", …)
  // The failures of checks the statement's level logs rather than enforces.
  std::vector<std::string> logged;
  std::vector<std::string> logged_checks;  // their checks' names
  std::string signer;  // the signing certificate's subject, once integrity holds
  // When an acceptance taken at `now` stops holding by the clock alone, if it does: the
  // signature's expiry (enforced), the first notAfter of the chain when its validity was
  // judged at `now` (enforced; not at a timestamp's or signing authority's time), and an hour
  // after `now` when revocation services were asked (their answer may change). A verdict kept
  // for later refreshes is taken again from then on.
  std::optional<std::time_t> holds_until;
};

// One Notary Project signature envelope (`media_type` application/jose+json or
// application/cose) against a trust policy statement, for the
// manifest or index `subject`, at the time `now` — the checks of notation-go, in its order:
//   integrity (always enforced): the envelope's format and critical attributes, the chain's
//     X.509 rules (leaf first, each issued by the next, ending at a self-signed root; the leaf
//     a code signing certificate, no SHA-1, RSA 2048+ or P-256/384/521), the signature by the
//     leaf's key with the algorithm its key calls for, and a payload whose targetArtifact has
//     the subject's media type, digest and size;
//   authenticity: a certificate of the chain is byte for byte one of the statement's ca trust
//     stores (signingAuthority stores for that scheme), and the leaf's subject matches a
//     trusted identity;
//   authenticTimestamp: every certificate valid at the authentic signing time (signingAuthority),
//     or (notary.x509) at the time of an RFC 3161 timestamp by an authority of the statement's
//     tsa stores whose own chain is not revoked, when the statement names a tsa store, else now;
//   expiry: io.cncf.notary.expiry not passed;
//   revocation: `revocation` (checkRevocation, by OCSP and CRL) for a chain that names either
//     and that a trust store vouches for; without `revocation` such a chain fails the check.
// `revocation` is given the chain from a certificate up to the store's, and the authentic
// signing time when there is one (signingAuthority; revoked with an invalidity date after it,
// a certificate still counts).
using RevocationCheck = std::function<RevocationResult(
    const CertificateChain&, std::optional<std::time_t> authentic_signing_time)>;
NotaryOutcome verifyNotarySignature(std::string_view envelope, std::string_view media_type,
                                    const NotationTrustPolicy& statement, const Descriptor& subject,
                                    std::time_t now, const RevocationCheck& revocation = {});

}  // namespace pullagent::puller
