#include "puller/trust/certificate.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <limits>

#include "puller/oci/sha256.h"
#include "puller/trust/openssl_handles.h"

namespace pullagent::puller {
namespace {

std::string timeText(const ASN1_TIME* time) {
  struct tm parts {};
  if (time == nullptr || ASN1_TIME_to_tm(time, &parts) != 1)
    return "an unreadable time";
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S UTC", &parts);
  return text;
}

std::string curveOf(EVP_PKEY* key) {
  char group[64] = {};
  size_t length = 0;
  EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &length);
  return std::string(group, length);
}

// The raw r||s of a JWS ECDSA signature as the DER OpenSSL verifies; nullopt when the length
// is not twice the curve's size.
std::optional<std::string> ecdsaDer(std::string_view raw, size_t half) {
  if (raw.size() != 2 * half)
    return std::nullopt;
  ECDSA_SIG* sig = ECDSA_SIG_new();
  BIGNUM* r = BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()), static_cast<int>(half),
                        nullptr);
  BIGNUM* s = BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()) + half,
                        static_cast<int>(half), nullptr);
  if (sig == nullptr || r == nullptr || s == nullptr) {
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(sig);
    return std::nullopt;
  }
  ECDSA_SIG_set0(sig, r, s);
  unsigned char* der = nullptr;
  const int length = i2d_ECDSA_SIG(sig, &der);
  ECDSA_SIG_free(sig);
  if (length <= 0)
    return std::nullopt;
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(length));
  OPENSSL_free(der);
  return out;
}

}  // namespace

struct Certificate::Handle {
  X509* x509 = nullptr;
  ~Handle() { X509_free(x509); }
};

Certificate::Certificate(std::unique_ptr<Handle> handle, std::string der)
    : handle_(std::move(handle)), der_(std::move(der)) {}

Certificate::~Certificate() = default;

Result<std::shared_ptr<const Certificate>> Certificate::fromDer(std::string_view der) {
  if (der.empty() || der.size() > kMaxBytes)
    return makeError(ErrorCode::kInvalidArgument,
                     "a certificate of " + std::to_string(der.size()) + " bytes");
  OpenSslErrorMark mark;
  auto handle = std::make_unique<Handle>();
  const auto* in = reinterpret_cast<const unsigned char*>(der.data());
  handle->x509 = d2i_X509(nullptr, &in, static_cast<long>(der.size()));
  if (handle->x509 == nullptr)
    return makeError(ErrorCode::kInvalidArgument, "not a DER X.509 certificate");
  if (in != reinterpret_cast<const unsigned char*>(der.data()) + der.size())
    return makeError(ErrorCode::kInvalidArgument, "bytes after the certificate");
  // Caches the extensions and flags every check below reads; a certificate whose extensions
  // do not parse is marked invalid here.
  X509_check_purpose(handle->x509, -1, 0);
  if ((X509_get_extension_flags(handle->x509) & EXFLAG_INVALID) != 0)
    return makeError(ErrorCode::kInvalidArgument, "the certificate's extensions are malformed");
  return std::shared_ptr<const Certificate>(new Certificate(std::move(handle), std::string(der)));
}

Result<std::vector<std::shared_ptr<const Certificate>>> Certificate::fromFile(
    std::string_view bytes) {
  std::vector<std::shared_ptr<const Certificate>> certificates;
  if (bytes.find("-----BEGIN") == std::string_view::npos) {
    ASSIGN_OR_RETURN(auto one, fromDer(bytes));
    certificates.push_back(std::move(one));
    return certificates;
  }
  if (bytes.size() > static_cast<size_t>(std::numeric_limits<int>::max()))
    return makeError(ErrorCode::kInvalidArgument, "too large");
  OpenSslErrorMark mark;
  BIO* bio = BIO_new_mem_buf(bytes.data(), static_cast<int>(bytes.size()));
  if (bio == nullptr)
    return makeError(ErrorCode::kInternal, "out of memory");
  for (;;) {
    char* name = nullptr;
    char* header = nullptr;
    unsigned char* data = nullptr;
    long length = 0;
    if (PEM_read_bio(bio, &name, &header, &data, &length) != 1)
      break;
    const std::string block = name;
    std::string der(reinterpret_cast<char*>(data), static_cast<size_t>(length));
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_free(data);
    if (block != "CERTIFICATE") {
      BIO_free(bio);
      return makeError(ErrorCode::kInvalidArgument,
                       "a PEM block \"" + block.substr(0, 40) + "\", not a CERTIFICATE");
    }
    auto certificate = fromDer(der);
    if (!certificate) {
      BIO_free(bio);
      return certificate.error();
    }
    certificates.push_back(std::move(certificate).value());
  }
  BIO_free(bio);
  if (certificates.empty())
    return makeError(ErrorCode::kInvalidArgument, "no PEM certificate");
  return certificates;
}

std::string Certificate::subject() const {
  BIO* bio = BIO_new(BIO_s_mem());
  if (bio == nullptr)
    return "?";
  X509_NAME_print_ex(bio, X509_get_subject_name(handle_->x509), 0,
                     XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
  char* data = nullptr;
  const long length = BIO_get_mem_data(bio, &data);
  std::string text(data, static_cast<size_t>(length > 0 ? length : 0));
  BIO_free(bio);
  return text.size() > 300 ? text.substr(0, 300) + "…" : text;
}

std::vector<std::pair<std::string, std::string>> Certificate::subjectAttributes() const {
  std::vector<std::pair<std::string, std::string>> attributes;
  const X509_NAME* name = X509_get_subject_name(handle_->x509);
  const int count = X509_NAME_entry_count(name);
  for (int i = 0; i < count; ++i) {
    const X509_NAME_ENTRY* entry = X509_NAME_get_entry(name, i);
    const int nid = OBJ_obj2nid(X509_NAME_ENTRY_get_object(entry));
    const char* short_name = nid == NID_undef ? nullptr : OBJ_nid2sn(nid);
    unsigned char* utf8 = nullptr;
    const int length = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(entry));
    if (length < 0)
      continue;
    std::string value(reinterpret_cast<char*>(utf8), static_cast<size_t>(length));
    OPENSSL_free(utf8);
    char oid[80] = {};
    if (short_name == nullptr)
      OBJ_obj2txt(oid, sizeof oid, X509_NAME_ENTRY_get_object(entry), 1);
    attributes.emplace_back(short_name != nullptr ? short_name : oid, std::move(value));
  }
  return attributes;
}

std::string Certificate::thumbprint() const {
  return Sha256::of(der_).hex();
}

bool Certificate::validAt(std::time_t when) const {
  OpenSslErrorMark mark;
  // X509_cmp_time: -1 when the certificate's time is at or before `when`, 1 after, 0 on error.
  return X509_cmp_time(X509_get0_notBefore(handle_->x509), &when) == -1 &&
         X509_cmp_time(X509_get0_notAfter(handle_->x509), &when) == 1;
}

bool Certificate::expiredBy(std::time_t when) const {
  OpenSslErrorMark mark;
  return X509_cmp_time(X509_get0_notAfter(handle_->x509), &when) == -1;
}

std::optional<std::time_t> Certificate::notAfterTime() const {
  OpenSslErrorMark mark;
  std::tm parts{};
  if (ASN1_TIME_to_tm(X509_get0_notAfter(handle_->x509), &parts) != 1)
    return std::nullopt;
  return ::timegm(&parts);
}

std::string Certificate::notAfter() const {
  return timeText(X509_get0_notAfter(handle_->x509));
}

std::string Certificate::notBefore() const {
  return timeText(X509_get0_notBefore(handle_->x509));
}

Status Certificate::checkCommon() const {
  X509* x509 = handle_->x509;
  const std::string who = "the certificate \"" + subject() + "\"";
  if ((X509_get_extension_flags(x509) & EXFLAG_CRITICAL) != 0)
    return makeError(ErrorCode::kUntrusted, who +
                                                " has a critical extension this agent does "
                                                "not know");
  int md = NID_undef;
  int pk = NID_undef;
  if (X509_get_signature_info(x509, &md, &pk, nullptr, nullptr) != 1 ||
      (md != NID_sha256 && md != NID_sha384 && md != NID_sha512)) {
    return makeError(ErrorCode::kUntrusted,
                     who + " is signed with " +
                         (md == NID_undef ? std::string("an unknown digest") : OBJ_nid2sn(md)) +
                         "; the Notary Project accepts SHA-256, SHA-384 and SHA-512 only");
  }
  EVP_PKEY* key = X509_get0_pubkey(x509);
  if (key == nullptr)
    return makeError(ErrorCode::kUntrusted, who + " has no readable public key");
  if (EVP_PKEY_is_a(key, "RSA")) {
    if (EVP_PKEY_get_bits(key) < 2048)
      return makeError(ErrorCode::kUntrusted, who + " has an RSA key of " +
                                                  std::to_string(EVP_PKEY_get_bits(key)) +
                                                  " bits (2048 at least)");
  } else if (EVP_PKEY_is_a(key, "EC")) {
    const std::string curve = curveOf(key);
    if (curve != "prime256v1" && curve != "secp384r1" && curve != "secp521r1")
      return makeError(ErrorCode::kUntrusted,
                       who + " has a key on the curve \"" + curve + "\" (P-256, P-384, P-521)");
  } else {
    return makeError(ErrorCode::kUntrusted, who + " has neither an RSA nor an ECDSA key");
  }
  return {};
}

Status Certificate::checkLeaf() const {
  OpenSslErrorMark mark;
  RETURN_IF_ERROR(checkCommon());
  X509* x509 = handle_->x509;
  const std::string who = "the signing certificate \"" + subject() + "\"";
  const uint32_t flags = X509_get_extension_flags(x509);
  if ((flags & EXFLAG_CA) != 0)
    return makeError(ErrorCode::kUntrusted, who + " is a CA (basicConstraints cA=true)");
  const int ku_index = X509_get_ext_by_NID(x509, NID_key_usage, -1);
  if (ku_index < 0 || (flags & EXFLAG_KUSAGE) == 0)
    return makeError(ErrorCode::kUntrusted, who + " has no keyUsage extension");
  if (X509_EXTENSION_get_critical(X509_get_ext(x509, ku_index)) != 1)
    return makeError(ErrorCode::kUntrusted, who + ": its keyUsage is not marked critical");
  const uint32_t usage = X509_get_key_usage(x509);
  if ((usage & KU_DIGITAL_SIGNATURE) == 0)
    return makeError(ErrorCode::kUntrusted, who + ": its keyUsage lacks digitalSignature");
  // nonRepudiation (contentCommitment) may come with it, as notation-core-go allows.
  if ((usage & ~static_cast<uint32_t>(KU_DIGITAL_SIGNATURE | KU_NON_REPUDIATION)) != 0)
    return makeError(ErrorCode::kUntrusted,
                     who +
                         ": its keyUsage must be digitalSignature only (it also allows "
                         "encipherment, key agreement or certificate or CRL signing)");
  if ((flags & EXFLAG_XKUSAGE) != 0) {
    const uint32_t extended = X509_get_extended_key_usage(x509);
    constexpr uint32_t kRefused =
        XKU_SSL_SERVER | XKU_SSL_CLIENT | XKU_SMIME | XKU_TIMESTAMP | XKU_OCSP_SIGN | XKU_ANYEKU;
    if ((extended & kRefused) != 0)
      return makeError(ErrorCode::kUntrusted,
                       who +
                           ": its extendedKeyUsage allows more than code signing (serverAuth, "
                           "clientAuth, emailProtection, timeStamping, OCSPSigning or any)");
    if ((extended & XKU_CODE_SIGN) == 0)
      return makeError(ErrorCode::kUntrusted, who + ": its extendedKeyUsage lacks codeSigning");
  }
  return {};
}

Status Certificate::checkCa(int certificates_below) const {
  OpenSslErrorMark mark;
  RETURN_IF_ERROR(checkCommon());
  X509* x509 = handle_->x509;
  const std::string who = "the CA certificate \"" + subject() + "\"";
  const uint32_t flags = X509_get_extension_flags(x509);
  // basicConstraints need not be critical: notation-core-go does not ask it, and CAs that
  // sign code today were issued so.
  if (X509_get_ext_by_NID(x509, NID_basic_constraints, -1) < 0 || (flags & EXFLAG_CA) == 0)
    return makeError(ErrorCode::kUntrusted, who + " is not a CA (basicConstraints cA=true)");
  const int ku_index = X509_get_ext_by_NID(x509, NID_key_usage, -1);
  if (ku_index < 0 || (flags & EXFLAG_KUSAGE) == 0 ||
      (X509_get_key_usage(x509) & KU_KEY_CERT_SIGN) == 0)
    return makeError(ErrorCode::kUntrusted, who + ": its keyUsage lacks keyCertSign");
  if (X509_EXTENSION_get_critical(X509_get_ext(x509, ku_index)) != 1)
    return makeError(ErrorCode::kUntrusted, who + ": its keyUsage is not marked critical");
  const long path_length = X509_get_pathlen(x509);
  if (path_length >= 0 && path_length < certificates_below)
    return makeError(ErrorCode::kUntrusted, who + ": its path length " +
                                                std::to_string(path_length) + " allows fewer " +
                                                "CAs than the chain has below it");
  return {};
}

x509_st* Certificate::openssl() const {
  return handle_->x509;
}

namespace {

bool webUrl(const std::string& url) {
  return (url.starts_with("http://") || url.starts_with("https://")) && url.size() <= 2048 &&
         url.find_first_of(" \r\n") == std::string::npos;
}

}  // namespace

std::vector<std::string> Certificate::ocspUrls() const {
  std::vector<std::string> urls;
  OpenSslErrorMark mark;
  STACK_OF(OPENSSL_STRING)* responders = X509_get1_ocsp(handle_->x509);
  for (int i = 0; responders != nullptr && i < sk_OPENSSL_STRING_num(responders); ++i) {
    std::string url = sk_OPENSSL_STRING_value(responders, i);
    if (webUrl(url))
      urls.push_back(std::move(url));
  }
  X509_email_free(responders);
  return urls;
}

std::vector<std::string> Certificate::crlUrls() const {
  std::vector<std::string> urls;
  OpenSslErrorMark mark;
  auto* points = static_cast<CRL_DIST_POINTS*>(
      X509_get_ext_d2i(handle_->x509, NID_crl_distribution_points, nullptr, nullptr));
  for (int i = 0; points != nullptr && i < sk_DIST_POINT_num(points); ++i) {
    const DIST_POINT* point = sk_DIST_POINT_value(points, i);
    if (point->distpoint == nullptr || point->distpoint->type != 0)
      continue;  // not a fullName
    const GENERAL_NAMES* names = point->distpoint->name.fullname;
    for (int j = 0; j < sk_GENERAL_NAME_num(names); ++j) {
      const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, j);
      if (name->type != GEN_URI)
        continue;
      const ASN1_IA5STRING* uri = name->d.uniformResourceIdentifier;
      std::string url(reinterpret_cast<const char*>(ASN1_STRING_get0_data(uri)),
                      static_cast<size_t>(ASN1_STRING_length(uri)));
      if (webUrl(url))
        urls.push_back(std::move(url));
    }
  }
  CRL_DIST_POINTS_free(points);
  return urls;
}

bool Certificate::isCa() const {
  return (X509_get_extension_flags(handle_->x509) & EXFLAG_CA) != 0;
}

bool Certificate::namesRevocationService() const {
  OpenSslErrorMark mark;
  STACK_OF(OPENSSL_STRING)* responders = X509_get1_ocsp(handle_->x509);
  const bool ocsp = responders != nullptr && sk_OPENSSL_STRING_num(responders) > 0;
  X509_email_free(responders);
  return ocsp || X509_get_ext_by_NID(handle_->x509, NID_crl_distribution_points, -1) >= 0;
}

bool Certificate::issuedBy(const Certificate& issuer) const {
  OpenSslErrorMark mark;
  if (X509_NAME_cmp(X509_get_issuer_name(handle_->x509),
                    X509_get_subject_name(issuer.handle_->x509)) != 0)
    return false;
  EVP_PKEY* key = X509_get0_pubkey(issuer.handle_->x509);
  return key != nullptr && X509_verify(handle_->x509, key) == 1;
}

Result<std::string> Certificate::jwsAlgorithm() const {
  OpenSslErrorMark mark;
  EVP_PKEY* key = X509_get0_pubkey(handle_->x509);
  if (key != nullptr && EVP_PKEY_is_a(key, "RSA")) {
    switch (EVP_PKEY_get_bits(key)) {
      case 2048:
        return std::string("PS256");
      case 3072:
        return std::string("PS384");
      case 4096:
        return std::string("PS512");
      default:
        return makeError(ErrorCode::kUntrusted,
                         "an RSA key of " + std::to_string(EVP_PKEY_get_bits(key)) +
                             " bits (the Notary Project signs with 2048, 3072 or 4096)");
    }
  }
  if (key != nullptr && EVP_PKEY_is_a(key, "EC")) {
    const std::string curve = curveOf(key);
    if (curve == "prime256v1")
      return std::string("ES256");
    if (curve == "secp384r1")
      return std::string("ES384");
    if (curve == "secp521r1")
      return std::string("ES512");
  }
  return makeError(ErrorCode::kUntrusted, "a key the Notary Project does not sign with");
}

Status Certificate::verifySignature(std::string_view alg, std::string_view message,
                                    std::string_view signature) const {
  ASSIGN_OR_RETURN(auto expected, jwsAlgorithm());
  if (alg != expected)
    return makeError(ErrorCode::kUntrusted, "the algorithm " + std::string(alg.substr(0, 16)) +
                                                " does not fit the certificate's key (" + expected +
                                                ")");
  const EVP_MD* md = alg.ends_with("256")   ? EVP_sha256()
                     : alg.ends_with("384") ? EVP_sha384()
                                            : EVP_sha512();
  EVP_PKEY* key = X509_get0_pubkey(handle_->x509);
  std::string der_signature(signature);
  const bool ecdsa = alg.starts_with("ES");
  if (ecdsa) {
    const size_t half = static_cast<size_t>((EVP_PKEY_get_bits(key) + 7) / 8);
    auto converted = ecdsaDer(signature, half);
    if (!converted)
      return makeError(ErrorCode::kUntrusted, "the ECDSA signature has " +
                                                  std::to_string(signature.size()) +
                                                  " bytes, not " + std::to_string(2 * half));
    der_signature = std::move(*converted);
  }
  OpenSslErrorMark mark;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (ctx == nullptr)
    return makeError(ErrorCode::kInternal, "out of memory");
  EVP_PKEY_CTX* pctx = nullptr;
  int ok = EVP_DigestVerifyInit(ctx, &pctx, md, nullptr, key);
  if (ok == 1 && !ecdsa) {
    ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
                 EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_AUTO) == 1
             ? 1
             : 0;
  }
  if (ok == 1) {
    ok = EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(der_signature.data()),
                          der_signature.size(),
                          reinterpret_cast<const unsigned char*>(message.data()), message.size());
  }
  EVP_MD_CTX_free(ctx);
  if (ok != 1)
    return makeError(ErrorCode::kUntrusted,
                     "the signature does not verify with the key of \"" + subject() + "\"");
  return {};
}

}  // namespace pullagent::puller
