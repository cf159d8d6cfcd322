#pragma once

#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/error.h"

struct x509_st;  // OpenSSL's X509

namespace pullagent::puller {

// One X.509 certificate of a Notary Project signature's chain or of a trust store, parsed by
// OpenSSL. Immutable and shared: a trust store's certificates are read once per config.
class Certificate {
 public:
  // Certificates are small; a larger input is refused before OpenSSL parses it.
  static constexpr size_t kMaxBytes = 64 * 1024;

  static Result<std::shared_ptr<const Certificate>> fromDer(std::string_view der);
  // Every certificate of a file as trust stores hold them: PEM (one or more "CERTIFICATE"
  // blocks) or one DER certificate.
  static Result<std::vector<std::shared_ptr<const Certificate>>> fromFile(std::string_view bytes);

  ~Certificate();
  Certificate(const Certificate&) = delete;
  Certificate& operator=(const Certificate&) = delete;

  const std::string& der() const { return der_; }
  // OpenSSL's certificate, for the protocols built on it (OCSP, CRLs, timestamps); owned here.
  x509_st* openssl() const;
  // The OCSP responders (AIA) and CRL distribution points it names (http and https only).
  std::vector<std::string> ocspUrls() const;
  std::vector<std::string> crlUrls() const;
  bool operator==(const Certificate& other) const { return der_ == other.der_; }
  // "CN=leaf,O=Example,ST=WA,C=US" (RFC 2253), for texts.
  std::string subject() const;
  // The subject's attributes by short name ("C", "ST", "O", "CN", …), in the certificate's
  // order; an attribute that occurs twice is listed twice.
  std::vector<std::pair<std::string, std::string>> subjectAttributes() const;
  // The hex SHA-256 of the DER bytes (what Notation calls the thumbprint).
  std::string thumbprint() const;
  bool validAt(std::time_t when) const;
  bool expiredBy(std::time_t when) const;           // notAfter before `when`
  std::string notAfter() const;                     // "2027-01-05 10:00:00 UTC"
  std::optional<std::time_t> notAfterTime() const;  // the same, as a time (none if unreadable)
  std::string notBefore() const;

  // The Notary Project's X.509 rules for one certificate, by role. Every rule that fails is
  // said, with the subject.
  Status checkLeaf() const;
  Status checkCa(int certificates_below) const;  // how many non-self-issued CAs are below it
  // Whether the certificate names an OCSP responder or a CRL distribution point, i.e. could be
  // revoked in a way the issuer publishes.
  bool namesRevocationService() const;
  // Whether `issuer` issued and signed this certificate (names and signature).
  bool issuedBy(const Certificate& issuer) const;
  bool selfSigned() const { return issuedBy(*this); }
  bool isCa() const;  // basicConstraints cA=true

  // A signature of this certificate's key over `message`, as the algorithm `alg` (by its JWS
  // name; COSE's identifiers name the same algorithms) makes it: PS256/384/512 (RSASSA-PSS;
  // signers use a salt as long as the hash, and any salt length is accepted, as
  // notation-core-go does) or ES256/384/512 (ECDSA, the raw r||s that JWS and COSE both
  // write). The algorithm must be the one the key's type and size call for (RSA 2048: PS256,
  // 3072: PS384, 4096: PS512; P-256: ES256, P-384: ES384, P-521: ES512), as Notation requires.
  Status verifySignature(std::string_view alg, std::string_view message,
                         std::string_view signature) const;
  // The JWS algorithm this certificate's key signs with, or an error for a key Notation
  // refuses (RSA other than 2048/3072/4096, curves other than P-256/384/521, other types).
  Result<std::string> jwsAlgorithm() const;

 private:
  struct Handle;
  Certificate(std::unique_ptr<Handle> handle, std::string der);
  Status checkCommon() const;

  std::unique_ptr<Handle> handle_;
  std::string der_;
};

using CertificateChain = std::vector<std::shared_ptr<const Certificate>>;

}  // namespace pullagent::puller
