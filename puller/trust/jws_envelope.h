#pragma once

#include <string_view>

#include "base/error.h"
#include "puller/trust/notary_envelope.h"

namespace pullagent::puller::notation {

// The JWS JSON serialization of a Notary Project signature (signature-envelope-jws.md):
//   {"payload": b64url, "protected": b64url(header JSON), "signature": b64url,
//    "header": {"x5c": [b64(DER)…], "io.cncf.notary.signingAgent": …,
//               "io.cncf.notary.timestampSignature": b64}}
// The protected header must carry alg, cty (the Notary payload type), crit and the signing
// scheme; crit must list io.cncf.notary.signingScheme and every critical attribute present,
// and may list no attribute this verifier does not know (an unknown critical attribute fails,
// as the specification demands). Errors name the field.
Result<Envelope> parseJws(std::string_view bytes);

}  // namespace pullagent::puller::notation
