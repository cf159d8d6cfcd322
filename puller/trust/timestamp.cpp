#include "puller/trust/timestamp.h"

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pkcs7.h>
#include <openssl/ts.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include <algorithm>
#include <limits>
#include <memory>

#include "puller/trust/openssl_handles.h"

namespace pullagent::puller {
namespace {

using Pkcs7 = std::unique_ptr<PKCS7, OpenSslFree<PKCS7_free>>;
using TstInfo = std::unique_ptr<TS_TST_INFO, OpenSslFree<TS_TST_INFO_free>>;
using VerifyContext = std::unique_ptr<TS_VERIFY_CTX, OpenSslFree<TS_VERIFY_CTX_free>>;
using StoreContext = std::unique_ptr<X509_STORE_CTX, OpenSslFree<X509_STORE_CTX_free>>;

Error untrusted(const std::string& why) {
  return makeError(ErrorCode::kUntrusted, "the RFC 3161 timestamp " + why);
}

std::time_t secondsOf(const ASN1_INTEGER* value) {
  int64_t number = 0;
  if (value == nullptr || ASN1_INTEGER_get_int64(&number, value) != 1 || number < 0)
    return 0;
  return static_cast<std::time_t>(std::min<int64_t>(number, 1 << 30));  // then refused
}

std::string nameOf(const GENERAL_NAME* name) {
  if (name == nullptr || name->type != GEN_DIRNAME)
    return "an unnamed authority";
  char text[256] = {};
  X509_NAME_oneline(name->d.directoryName, text, sizeof text);
  return text;
}

// The chain TS_RESP_verify_token accepted, built again the same way (the token's certificates
// as untrusted intermediates, the store's as anchors, at the token's time, for time stamping):
// OpenSSL does not hand out the chain it verified.
Result<CertificateChain> authorityChain(PKCS7* signed_data, X509_STORE* store, std::time_t at) {
  STACK_OF(X509)* included = signed_data->d.sign->cert;  // may be null
  STACK_OF(X509)* signers = PKCS7_get0_signers(signed_data, included, 0);
  if (signers == nullptr || sk_X509_num(signers) != 1) {
    sk_X509_free(signers);
    return untrusted("token names no single signing certificate");
  }
  X509* signer = sk_X509_value(signers, 0);
  sk_X509_free(signers);  // the certificates stay the token's
  StoreContext context(X509_STORE_CTX_new());
  if (!context || X509_STORE_CTX_init(context.get(), store, signer, included) != 1)
    return makeError(ErrorCode::kInternal, "out of memory");
  X509_STORE_CTX_set_purpose(context.get(), X509_PURPOSE_TIMESTAMP_SIGN);
  X509_STORE_CTX_set_time(context.get(), 0, at);
  if (X509_verify_cert(context.get()) != 1)
    return untrusted("token's certificate chain does not verify again");
  CertificateChain chain;
  STACK_OF(X509)* verified = X509_STORE_CTX_get0_chain(context.get());
  for (int i = 0; i < sk_X509_num(verified); ++i) {
    unsigned char* der = nullptr;
    const int length = i2d_X509(sk_X509_value(verified, i), &der);
    if (length <= 0)
      return makeError(ErrorCode::kInternal, "a TSA certificate could not be encoded");
    auto certificate = Certificate::fromDer(
        std::string_view(reinterpret_cast<char*>(der), static_cast<size_t>(length)));
    OPENSSL_free(der);
    if (!certificate)
      return untrusted("token's certificate chain: " + certificate.error().message);
    chain.push_back(std::move(*certificate));
  }
  return chain;
}

}  // namespace

Result<Timestamp> verifyTimestamp(std::string_view token, std::string_view message,
                                  const CertificateChain& roots) {
  if (token.empty() || token.size() > 64 * 1024)
    return untrusted("token has " + std::to_string(token.size()) + " bytes");
  if (message.size() > static_cast<size_t>(std::numeric_limits<int>::max()))
    return untrusted("covers too large a message");
  OpenSslErrorMark mark;
  const auto* in = reinterpret_cast<const unsigned char*>(token.data());
  Pkcs7 signed_data(d2i_PKCS7(nullptr, &in, static_cast<long>(token.size())));
  if (!signed_data)
    return untrusted("token is not DER CMS SignedData");
  TstInfo info(PKCS7_to_TS_TST_INFO(signed_data.get()));
  if (!info)
    return untrusted("token carries no TSTInfo");
  struct tm parts {};
  const ASN1_GENERALIZEDTIME* generated = TS_TST_INFO_get_time(info.get());
  if (generated == nullptr || ASN1_TIME_to_tm(generated, &parts) != 1)
    return untrusted("token has no readable time");
  // The imprint's hash: SHA-2 only (TS_VFY_DATA would take SHA-1 or MD5 as given).
  const X509_ALGOR* imprint = TS_MSG_IMPRINT_get_algo(TS_TST_INFO_get_msg_imprint(info.get()));
  const int hash = imprint == nullptr ? NID_undef : OBJ_obj2nid(imprint->algorithm);
  if (hash != NID_sha256 && hash != NID_sha384 && hash != NID_sha512)
    return untrusted("token hashes its message with other than SHA-256, SHA-384 or SHA-512");
  Timestamp timestamp;
  timestamp.time = timegm(&parts);
  if (const TS_ACCURACY* accuracy = TS_TST_INFO_get_accuracy(info.get())) {
    // Rounded up to whole seconds: the range must hold at its widest.
    timestamp.accuracy = secondsOf(TS_ACCURACY_get_seconds(accuracy)) +
                         ((TS_ACCURACY_get_millis(accuracy) != nullptr ||
                           TS_ACCURACY_get_micros(accuracy) != nullptr)
                              ? 1
                              : 0);
  }
  // An accuracy beyond a day says nothing a certificate's validity could be checked against.
  if (timestamp.accuracy > 24 * 3600)
    return untrusted("token's accuracy is more than a day");
  timestamp.authority = nameOf(TS_TST_INFO_get_tsa(info.get()));

  // The TSA's chain is checked at the time the token states: a TSA certificate that expired
  // since still vouches for what it signed while valid.
  X509_STORE* store = X509_STORE_new();
  if (store == nullptr)
    return makeError(ErrorCode::kInternal, "out of memory");
  VerifyContext context(TS_VERIFY_CTX_new());
  if (!context) {
    X509_STORE_free(store);
    return makeError(ErrorCode::kInternal, "out of memory");
  }
  TS_VERIFY_CTX_set_store(context.get(), store);  // owned by the context from here
  for (const auto& root : roots) {
    const auto* der = reinterpret_cast<const unsigned char*>(root->der().data());
    X509* certificate = d2i_X509(nullptr, &der, static_cast<long>(root->der().size()));
    if (certificate == nullptr)
      continue;
    X509_STORE_add_cert(store, certificate);
    X509_free(certificate);
  }
  X509_VERIFY_PARAM_set_time(X509_STORE_get0_param(store), timestamp.time);
  BIO* data = BIO_new_mem_buf(message.data(), static_cast<int>(message.size()));
  if (data == nullptr)
    return makeError(ErrorCode::kInternal, "out of memory");
  TS_VERIFY_CTX_set_data(context.get(), data);  // owned by the context too
  TS_VERIFY_CTX_set_flags(context.get(), TS_VFY_VERSION | TS_VFY_SIGNATURE | TS_VFY_DATA);
  if (TS_RESP_verify_token(context.get(), signed_data.get()) != 1) {
    const unsigned long code = ERR_peek_last_error();
    char reason[160] = {};
    ERR_error_string_n(code, reason, sizeof reason);
    return untrusted("by " + timestamp.authority + " does not verify against the tsa trust " +
                     "stores, or is not over this signature (" + reason + ")");
  }
  ASSIGN_OR_RETURN(timestamp.chain, authorityChain(signed_data.get(), store, timestamp.time));
  return timestamp;
}

}  // namespace pullagent::puller
