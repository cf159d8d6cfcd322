#pragma once

#include <string_view>

#include "base/error.h"
#include "puller/trust/notary_envelope.h"

namespace pullagent::puller::notation {

// The COSE_Sign1_Tagged form of a Notary Project signature (signature-envelope-cose.md,
// RFC 9052), as Notation writes it:
//   18([protected: bstr .cbor {1: alg, 2: crit, 3: content type,
//                              "io.cncf.notary.signingScheme": tstr,
//                              "io.cncf.notary.signingTime" | "…authenticSigningTime": 1(int),
//                              ? "io.cncf.notary.expiry": 1(int), extended attributes…},
//       unprotected: {33: [bstr (DER)…] (x5chain, leaf first),
//                     ? "io.cncf.notary.timestampSignature": bstr, ? signingAgent: tstr},
//       payload: bstr, signature: bstr])
// The rules are those of the JWS form (parseJws): the algorithm (PS256/384/512 are -37/-38/-39,
// ES256/384/512 are -7/-35/-36), the payload's content type, the scheme and its time, an expiry
// after it, and crit listing every critical attribute present and nothing this verifier does
// not know. Times are tag 1 (epoch seconds, an integer, as Notation writes them). What the
// signature covers is the Sig_structure ["Signature1", protected, h'', payload]. Errors name
// the header and label.
Result<Envelope> parseCose(std::string_view bytes);

}  // namespace pullagent::puller::notation
