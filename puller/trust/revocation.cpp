#include "puller/trust/revocation.h"

#include <openssl/err.h>
#include <openssl/ocsp.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include <algorithm>
#include <chrono>
#include <limits>
#include <memory>

#include "puller/trust/openssl_handles.h"

namespace pullagent::puller {
namespace {

using RevocationStatus = RevocationResult::Status;

constexpr size_t kMaxOcspResponse = 64 * 1024;
constexpr size_t kMaxCrl = 8 * 1024 * 1024;
constexpr auto kRequestTimeout = std::chrono::seconds(10);
// Clock skew allowed between a responder and this host, as OpenSSL's ocsp command allows.
constexpr long kLeewaySeconds = 300;
// An answer without nextUpdate is current for this long after it was made (a "good" answer
// replayed from before a revocation must not count forever).
constexpr long kMaxOcspAgeSeconds = 7 * 24 * 3600;
// Sources asked per certificate: a certificate naming thousands of URLs costs no more.
constexpr size_t kMaxSourcesPerKind = 2;

using OcspRequest = std::unique_ptr<OCSP_REQUEST, OpenSslFree<OCSP_REQUEST_free>>;
using OcspResponse = std::unique_ptr<OCSP_RESPONSE, OpenSslFree<OCSP_RESPONSE_free>>;
using OcspBasic = std::unique_ptr<OCSP_BASICRESP, OpenSslFree<OCSP_BASICRESP_free>>;
using OcspId = std::unique_ptr<OCSP_CERTID, OpenSslFree<OCSP_CERTID_free>>;
using Crl = std::unique_ptr<X509_CRL, OpenSslFree<X509_CRL_free>>;
using Store = std::unique_ptr<X509_STORE, OpenSslFree<X509_STORE_free>>;

// Kept answers are asked again after a day at most, whatever their nextUpdate says.
constexpr std::time_t kMaxKeptSeconds = 24 * 3600;

// One answer: what the source said, or why it said nothing usable, and until when it is
// current (when it says something).
struct RevocationAnswer {
  std::optional<RevocationStatus> status;  // kGood or kRevoked
  std::string why;
  std::time_t until = 0;
  std::optional<std::time_t> invalid_since;  // revoked: the invalidityDate, when given
};

using GeneralizedTime =
    std::unique_ptr<ASN1_GENERALIZEDTIME, OpenSslFree<ASN1_GENERALIZEDTIME_free>>;
using Enumerated = std::unique_ptr<ASN1_ENUMERATED, OpenSslFree<ASN1_ENUMERATED_free>>;

// A source that said nothing usable, and why.
RevocationAnswer noAnswer(std::string why) {
  return {std::nullopt, std::move(why), 0, std::nullopt};
}

// CRLReason values (RFC 5280 5.3.1) read apart from "revoked".
constexpr long kReasonCertificateHold = 6;
constexpr long kReasonRemoveFromCrl = 8;

std::optional<std::time_t> timeOf(const ASN1_TIME* time) {
  struct tm parts {};
  if (time == nullptr || ASN1_TIME_to_tm(time, &parts) != 1)
    return std::nullopt;
  return timegm(&parts);
}

Context revocationRequestContext(const Context& ctx) {
  Context request = ctx;
  const auto limit = ctx.clock->now() + kRequestTimeout;
  request.deadline = ctx.deadline ? std::min(*ctx.deadline, limit) : limit;
  return request;
}

RevocationAnswer askOcsp(HttpClient& http, const std::string& url, const Certificate& certificate,
                         const Certificate& issuer, const CertificateChain& chain,
                         const Context& ctx) {
  OpenSslErrorMark mark;
  OcspId id(OCSP_cert_to_id(EVP_sha1(), certificate.openssl(), issuer.openssl()));
  OcspRequest request(OCSP_REQUEST_new());
  if (!id || !request)
    return noAnswer("out of memory");
  OCSP_CERTID* added = OCSP_CERTID_dup(id.get());
  if (added == nullptr || OCSP_request_add0_id(request.get(), added) == nullptr) {
    OCSP_CERTID_free(added);
    return noAnswer("out of memory");
  }
  unsigned char* der = nullptr;
  const int length = i2d_OCSP_REQUEST(request.get(), &der);
  if (length <= 0)
    return noAnswer("the request could not be encoded");
  HttpRequest post;
  post.method = "POST";
  post.url = url;
  post.body.assign(reinterpret_cast<char*>(der), static_cast<size_t>(length));
  OPENSSL_free(der);
  post.headers.push_back({"Content-Type", "application/ocsp-request"});
  post.headers.push_back({"Accept", "application/ocsp-response"});
  post.max_body = kMaxOcspResponse;
  auto response = http.send(post, revocationRequestContext(ctx));
  if (!response)
    return noAnswer("OCSP " + url + ": " + response.error().message);
  if (response->status != 200)
    return noAnswer("OCSP " + url + ": HTTP " + std::to_string(response->status));
  const auto* in = reinterpret_cast<const unsigned char*>(response->body.data());
  OcspResponse parsed(d2i_OCSP_RESPONSE(nullptr, &in, static_cast<long>(response->body.size())));
  if (!parsed)
    return noAnswer("OCSP " + url + ": not an OCSP response");
  if (OCSP_response_status(parsed.get()) != OCSP_RESPONSE_STATUS_SUCCESSFUL)
    return noAnswer("OCSP " + url + ": the responder answered " +
                    OCSP_response_status_str(OCSP_response_status(parsed.get())));
  OcspBasic basic(OCSP_response_get1_basic(parsed.get()));
  if (!basic)
    return noAnswer("OCSP " + url + ": no basic response");
  // Signed by the issuer, or by a responder the issuer delegated to (OCSPSigning), whose chain
  // leads to the chain's own root.
  Store store(X509_STORE_new());
  STACK_OF(X509)* untrusted = sk_X509_new_null();
  if (!store || untrusted == nullptr) {
    sk_X509_free(untrusted);
    return noAnswer("out of memory");
  }
  // The anchor need not be self-signed (a trust store may hold an intermediate).
  X509_STORE_add_cert(store.get(), chain.back()->openssl());
  X509_STORE_set_flags(store.get(), X509_V_FLAG_PARTIAL_CHAIN);
  for (const auto& member : chain)
    sk_X509_push(untrusted, member->openssl());
  const int verified = OCSP_basic_verify(basic.get(), untrusted, store.get(), 0);
  sk_X509_free(untrusted);
  if (verified != 1)
    return noAnswer("OCSP " + url +
                    ": the response is not signed by the issuer or a "
                    "responder it delegated to");
  int status = -1;
  int reason = -1;
  ASN1_GENERALIZEDTIME* revoked_at = nullptr;
  ASN1_GENERALIZEDTIME* this_update = nullptr;
  ASN1_GENERALIZEDTIME* next_update = nullptr;
  if (OCSP_resp_find_status(basic.get(), id.get(), &status, &reason, &revoked_at, &this_update,
                            &next_update) != 1)
    return noAnswer("OCSP " + url + ": the response does not answer for the certificate");
  if (OCSP_check_validity(this_update, next_update, kLeewaySeconds, kMaxOcspAgeSeconds) != 1)
    return noAnswer("OCSP " + url + ": the response is not current");
  // Current until its nextUpdate, or (without one) as long as OCSP_check_validity lets it.
  const auto made = timeOf(this_update);
  const auto next = timeOf(next_update);
  const std::time_t until = next ? *next : made ? *made + kMaxOcspAgeSeconds : 0;
  if (status == V_OCSP_CERTSTATUS_GOOD)
    return {RevocationStatus::kGood, "", until, std::nullopt};
  if (status == V_OCSP_CERTSTATUS_REVOKED) {
    // The invalidityDate, a singleExtension of the answer (RFC 6960 4.4.7 allows the CRL entry
    // extensions there).
    std::optional<std::time_t> invalid_since;
    if (OCSP_SINGLERESP* single =
            OCSP_resp_get0(basic.get(), OCSP_resp_find(basic.get(), id.get(), -1))) {
      GeneralizedTime date(static_cast<ASN1_GENERALIZEDTIME*>(
          OCSP_SINGLERESP_get1_ext_d2i(single, NID_invalidity_date, nullptr, nullptr)));
      invalid_since = timeOf(date.get());
    }
    return {RevocationStatus::kRevoked, "revoked (OCSP " + url + ")", until, invalid_since};
  }
  return noAnswer("OCSP " + url + ": the responder does not know the certificate");
}

RevocationAnswer askCrl(HttpClient& http, const std::string& url, const Certificate& certificate,
                        const Certificate& issuer, std::time_t now, const Context& ctx) {
  OpenSslErrorMark mark;
  HttpRequest get;
  get.url = url;
  get.max_body = kMaxCrl;
  auto response = http.send(get, revocationRequestContext(ctx));
  if (!response)
    return noAnswer("CRL " + url + ": " + response.error().message);
  if (response->status != 200)
    return noAnswer("CRL " + url + ": HTTP " + std::to_string(response->status));
  const auto* in = reinterpret_cast<const unsigned char*>(response->body.data());
  Crl crl(d2i_X509_CRL(nullptr, &in, static_cast<long>(response->body.size())));
  if (!crl)
    return noAnswer("CRL " + url + ": not a DER CRL");
  if (X509_NAME_cmp(X509_CRL_get_issuer(crl.get()), X509_get_subject_name(issuer.openssl())) != 0)
    return noAnswer("CRL " + url + ": issued by another authority");
  if ((X509_get_extension_flags(issuer.openssl()) & EXFLAG_KUSAGE) != 0 &&
      (X509_get_key_usage(issuer.openssl()) & KU_CRL_SIGN) == 0)
    return noAnswer("CRL " + url + ": its issuer may not sign CRLs (no cRLSign)");
  EVP_PKEY* key = X509_get0_pubkey(issuer.openssl());
  if (key == nullptr || X509_CRL_verify(crl.get(), key) != 1)
    return noAnswer("CRL " + url + ": not signed by the issuer");
  // A complete CRL of the whole authority, as this reads it: no delta, no partition
  // (issuingDistributionPoint), no critical extension it does not know.
  for (int i = 0; i < X509_CRL_get_ext_count(crl.get()); ++i) {
    X509_EXTENSION* extension = X509_CRL_get_ext(crl.get(), i);
    const int nid = OBJ_obj2nid(X509_EXTENSION_get_object(extension));
    if (nid == NID_delta_crl || nid == NID_issuing_distribution_point ||
        (X509_EXTENSION_get_critical(extension) == 1 && nid != NID_crl_number &&
         nid != NID_authority_key_identifier))
      return noAnswer("CRL " + url + ": a delta, partitioned or critically extended CRL");
  }
  const std::time_t early = now + kLeewaySeconds;
  if (X509_cmp_time(X509_CRL_get0_lastUpdate(crl.get()), const_cast<std::time_t*>(&early)) != -1)
    return noAnswer("CRL " + url + ": issued in the future");
  const ASN1_TIME* next_update = X509_CRL_get0_nextUpdate(crl.get());
  const std::time_t late = now - kLeewaySeconds;
  if (next_update == nullptr || X509_cmp_time(next_update, const_cast<std::time_t*>(&late)) != 1)
    return noAnswer("CRL " + url + ": not current (past its nextUpdate)");
  const std::time_t until = timeOf(next_update).value_or(0);
  // Every entry for the serial, in the CRL's order, read as notation-core-go reads them
  // (crl.go checkRevocation): an entry for a permanent reason revokes; certificateHold and
  // removeFromCRL are temporary, and the latest of them by revocation date decides (a hold is
  // revoked, a hold lifted is not). An authentic signing time before the invalidityDate of an
  // entry read up to the first permanent one makes the certificate good for that signature
  // (atSigning, with the latest such date).
  const ASN1_INTEGER* serial = X509_get0_serialNumber(certificate.openssl());
  STACK_OF(X509_REVOKED)* entries = X509_CRL_get_REVOKED(crl.get());
  bool permanent = false;
  const X509_REVOKED* latest_temporary = nullptr;
  long latest_temporary_reason = -1;
  std::optional<std::time_t> invalid_since;
  for (int i = 0; i < sk_X509_REVOKED_num(entries) && !permanent; ++i) {
    const X509_REVOKED* entry = sk_X509_REVOKED_value(entries, i);
    if (ASN1_INTEGER_cmp(X509_REVOKED_get0_serialNumber(entry), serial) != 0)
      continue;
    // An entry extension marked critical that this does not read: the entry cannot be read.
    for (int j = 0; j < X509_REVOKED_get_ext_count(entry); ++j) {
      X509_EXTENSION* extension = X509_REVOKED_get_ext(entry, j);
      const int nid = OBJ_obj2nid(X509_EXTENSION_get_object(extension));
      if (X509_EXTENSION_get_critical(extension) == 1 && nid != NID_crl_reason &&
          nid != NID_invalidity_date)
        return noAnswer("CRL " + url +
                        ": its entry for the certificate has a critical "
                        "extension this does not know");
    }
    GeneralizedTime date(static_cast<ASN1_GENERALIZEDTIME*>(
        X509_REVOKED_get_ext_d2i(entry, NID_invalidity_date, nullptr, nullptr)));
    if (const auto since = timeOf(date.get()))
      invalid_since = invalid_since ? std::max(*invalid_since, *since) : *since;
    Enumerated reason(static_cast<ASN1_ENUMERATED*>(
        X509_REVOKED_get_ext_d2i(entry, NID_crl_reason, nullptr, nullptr)));
    const long code = reason ? ASN1_ENUMERATED_get(reason.get()) : -1;
    if (code != kReasonCertificateHold && code != kReasonRemoveFromCrl) {
      permanent = true;
      continue;
    }
    if (latest_temporary == nullptr ||
        ASN1_TIME_compare(X509_REVOKED_get0_revocationDate(latest_temporary),
                          X509_REVOKED_get0_revocationDate(entry)) < 0) {
      latest_temporary = entry;
      latest_temporary_reason = code;
    }
  }
  if (permanent)
    return {RevocationStatus::kRevoked, "revoked (CRL " + url + ")", until, invalid_since};
  if (latest_temporary != nullptr && latest_temporary_reason == kReasonCertificateHold)
    return {RevocationStatus::kRevoked, "on hold (CRL " + url + ")", until, invalid_since};
  return {RevocationStatus::kGood, "", until, std::nullopt};
}

// The cache's key: the certificate, its issuer and the source, by their bytes.
std::string answerKey(const Certificate& certificate, const Certificate& issuer,
                      const std::string& url) {
  return certificate.thumbprint() + " " + issuer.thumbprint() + " " + url;
}

}  // namespace

std::optional<RevocationCache::Answer> RevocationCache::find(const std::string& key,
                                                             std::time_t now) const {
  std::lock_guard lock(mutex_);
  auto found = answers_.find(key);
  if (found == answers_.end() || found->second.until <= now)
    return std::nullopt;
  return found->second;
}

void RevocationCache::keep(const std::string& key, Answer answer, std::time_t now) {
  answer.until = std::min(answer.until, now + kMaxKeptSeconds);
  if (answer.until <= now)
    return;
  std::lock_guard lock(mutex_);
  // Bounded: past kMaxEntries the answers no longer current go, then (if still full) all.
  if (answers_.size() >= kMaxEntries && answers_.count(key) == 0) {
    std::erase_if(answers_, [&](const auto& entry) { return entry.second.until <= now; });
    if (answers_.size() >= kMaxEntries)
      answers_.clear();
  }
  answers_[key] = std::move(answer);
}

size_t RevocationCache::size() const {
  std::lock_guard lock(mutex_);
  return answers_.size();
}

RevocationResult checkRevocation(HttpClient& http, const CertificateChain& chain,
                                 const RevocationQuery& query, const Context& ctx) {
  const std::time_t now = query.now;
  RevocationCache* cache = query.cache;
  // The root (self-signed) has no issuer to ask.
  for (size_t i = 0; i + 1 < chain.size(); ++i) {
    const Certificate& certificate = *chain[i];
    const Certificate& issuer = *chain[i + 1];
    auto ocsp = certificate.ocspUrls();
    auto crls = certificate.crlUrls();
    const std::string who = "the certificate \"" + certificate.subject() + "\"";
    if (ocsp.empty() && crls.empty()) {
      if (certificate.namesRevocationService())
        return {RevocationStatus::kUnknown,
                who +
                    ": revocation status unknown (it names revocation services, none of "
                    "them at an http or https address)"};
      continue;  // cannot be revoked
    }
    ocsp.resize(std::min(ocsp.size(), kMaxSourcesPerKind));
    crls.resize(std::min(crls.size(), kMaxSourcesPerKind));
    std::string tried;
    std::optional<RevocationStatus> decided;
    std::string said;
    // A kept answer, else the source's, kept when it decides.
    auto ask = [&](const std::string& url, auto&& asking) {
      const std::string key = answerKey(certificate, issuer, url);
      if (cache != nullptr) {
        if (auto kept = cache->find(key, now))
          return RevocationAnswer{kept->status, kept->why, kept->until, kept->invalid_since};
      }
      RevocationAnswer answer = asking();
      if (cache != nullptr && answer.status)
        cache->keep(key, {*answer.status, answer.why, answer.until, answer.invalid_since}, now);
      return answer;
    };
    // Revoked from a date after an authentic signing time: good when it signed
    // (notation-core-go compares the signing time before the reason).
    auto atSigning = [&](RevocationAnswer answer) {
      if (answer.status == RevocationStatus::kRevoked && query.signing_time &&
          answer.invalid_since && *query.signing_time < *answer.invalid_since)
        answer.status = RevocationStatus::kGood;
      return answer;
    };
    for (const auto& url : ocsp) {
      if (decided)
        break;
      auto answer =
          atSigning(ask(url, [&] { return askOcsp(http, url, certificate, issuer, chain, ctx); }));
      decided = answer.status;
      said = answer.status ? answer.why : said;
      if (!answer.status)
        tried += (tried.empty() ? "" : "; ") + answer.why;
    }
    for (const auto& url : crls) {
      if (decided)
        break;
      auto answer =
          atSigning(ask(url, [&] { return askCrl(http, url, certificate, issuer, now, ctx); }));
      decided = answer.status;
      said = answer.status ? answer.why : said;
      if (!answer.status)
        tried += (tried.empty() ? "" : "; ") + answer.why;
    }
    if (!decided) {
      if (tried.size() > 600)
        tried = tried.substr(0, 600) + "…";
      return {RevocationStatus::kUnknown, who + ": revocation status unknown (" + tried + ")"};
    }
    if (*decided == RevocationStatus::kRevoked)
      return {RevocationStatus::kRevoked, who + " is " + said};
  }
  return {};
}

}  // namespace pullagent::puller
