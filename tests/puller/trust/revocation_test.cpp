#include "puller/trust/revocation.h"

#include <gtest/gtest.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <chrono>
#include <filesystem>
#include <string>

#include "base/clock.h"
#include "tests/support/scripted_http.h"

namespace pullagent::puller {
namespace {

using testing::readFile;
using testing::ScriptedHttp;

// A CA, the certificates it issued and its CRL (tests/support/notation.py revocation-fixtures):
// "held" (certificateHold), "lifted" (removeFromCRL), "compromised" (keyCompromise, invalid
// since 2024-01-01; it names an OCSP responder too), "revoked" (no reason, no date), "good".
const std::filesystem::path kFixtures =
    std::filesystem::path(PULLAGENT_SOURCE_DIR) / "tests/puller/trust/data/revocation";
const std::time_t k2023 = 1672531200;  // 2023-01-01
const std::time_t k2024 = 1704067200;  // 2024-01-01, the compromise's invalidityDate
const std::time_t k2025 = 1735689600;  // 2025-01-01

std::shared_ptr<const Certificate> certificateOf(const std::string& label) {
  auto parsed = Certificate::fromFile(readFile(kFixtures / (label + ".pem")));
  EXPECT_TRUE(parsed.ok()) << label;
  return parsed.value().front();
}

// An OCSP answer for `label` by the CA, current (signed as the test runs, with OpenSSL's
// builder, not ours): revoked for a key compromise on 2025-01-01, and invalid since
// `invalid_since` when given (a singleExtension, as `openssl ocsp` writes it).
std::string revokedAnswer(const std::string& label, std::optional<std::time_t> invalid_since) {
  const auto certificate = certificateOf(label);
  const auto ca = certificateOf("ca");
  const std::string key_pem = readFile(kFixtures / "ca.key");
  BIO* bio = BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size()));
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  OCSP_BASICRESP* basic = OCSP_BASICRESP_new();
  OCSP_CERTID* id = OCSP_cert_to_id(EVP_sha1(), certificate->openssl(), ca->openssl());
  const std::time_t now = std::time(nullptr);
  ASN1_TIME* this_update = ASN1_TIME_set(nullptr, now - 60);
  ASN1_TIME* next_update = ASN1_TIME_set(nullptr, now + 3600);
  ASN1_TIME* revoked_at = ASN1_TIME_set(nullptr, k2025);
  OCSP_SINGLERESP* single = OCSP_basic_add1_status(basic, id, V_OCSP_CERTSTATUS_REVOKED,
                                                   OCSP_REVOKED_STATUS_KEYCOMPROMISE, revoked_at,
                                                   this_update, next_update);
  EXPECT_NE(single, nullptr);
  if (invalid_since) {
    ASN1_GENERALIZEDTIME* date = ASN1_GENERALIZEDTIME_set(nullptr, *invalid_since);
    EXPECT_EQ(OCSP_SINGLERESP_add1_ext_i2d(single, NID_invalidity_date, date, 0, 0), 1);
    ASN1_GENERALIZEDTIME_free(date);
  }
  EXPECT_EQ(OCSP_basic_sign(basic, ca->openssl(), key, EVP_sha256(), nullptr, 0), 1);
  OCSP_RESPONSE* response = OCSP_response_create(OCSP_RESPONSE_STATUS_SUCCESSFUL, basic);
  unsigned char* der = nullptr;
  const int length = i2d_OCSP_RESPONSE(response, &der);
  std::string bytes(reinterpret_cast<char*>(der), static_cast<size_t>(length));
  OPENSSL_free(der);
  OCSP_RESPONSE_free(response);
  OCSP_BASICRESP_free(basic);
  OCSP_CERTID_free(id);
  ASN1_TIME_free(this_update);
  ASN1_TIME_free(next_update);
  ASN1_TIME_free(revoked_at);
  EVP_PKEY_free(key);
  return bytes;
}

class Revocation : public ::testing::Test {
 protected:
  SystemClock clock_;
  ScriptedHttp http_;

  RevocationResult check(const std::string& label, std::optional<std::time_t> signing_time) {
    return checkRevocation(http_, {certificateOf(label), certificateOf("ca")},
                           {std::time(nullptr), signing_time, nullptr},
                           Context{&clock_, {}, std::nullopt});
  }
  void answerWithTheCrl() {
    http_.expect([](const HttpRequest& request) {
      EXPECT_EQ(request.url, "http://127.0.0.1:9/revocation.crl");
      return testing::respond(200, readFile(kFixtures / "revocation.crl"));
    });
  }
};

TEST_F(Revocation, ACrlEntryOnHoldIsRevokedAndOneWhoseHoldWasLiftedIsNot) {
  answerWithTheCrl();
  auto result = check("held", std::nullopt);
  EXPECT_EQ(result.status, RevocationResult::Status::kRevoked);
  EXPECT_EQ(result.detail,
            "the certificate \"CN=acme-held,O=Acme,L=Seattle,ST=WA,C=US\" is on hold (CRL "
            "http://127.0.0.1:9/revocation.crl)");
  answerWithTheCrl();
  EXPECT_EQ(check("lifted", std::nullopt).status, RevocationResult::Status::kGood);
  answerWithTheCrl();
  EXPECT_EQ(check("good", std::nullopt).status, RevocationResult::Status::kGood);
  answerWithTheCrl();
  EXPECT_EQ(check("revoked", k2023).status, RevocationResult::Status::kRevoked);
}

// notation-core-go: an authentic signing time before the invalidityDate means the certificate
// was good when it signed; without one, or at or after the date, it is revoked.
TEST_F(Revocation, ACertificateRevokedFromAnInvalidityDateAfterTheSigningTimeStillCounts) {
  // The OCSP responder fails, so the CRL decides.
  auto crl = [&] {
    http_.expect([](const HttpRequest&) { return testing::respond(500); });
    answerWithTheCrl();
  };
  crl();
  EXPECT_EQ(check("compromised", k2023).status, RevocationResult::Status::kGood);
  crl();
  EXPECT_EQ(check("compromised", k2024).status, RevocationResult::Status::kRevoked);
  crl();
  EXPECT_EQ(check("compromised", k2025).status, RevocationResult::Status::kRevoked);
  crl();
  EXPECT_EQ(check("compromised", std::nullopt).status, RevocationResult::Status::kRevoked);
  // A revocation without a date is one whatever the signing time.
  answerWithTheCrl();
  EXPECT_EQ(check("revoked", k2023).status, RevocationResult::Status::kRevoked);

  // The same rule for an OCSP answer's invalidityDate.
  const auto ocsp = [&](std::optional<std::time_t> invalid_since) {
    http_.expect([invalid_since](const HttpRequest& request) {
      EXPECT_EQ(request.url, "http://127.0.0.1:9/ocsp");
      return testing::respond(200, revokedAnswer("compromised", invalid_since));
    });
  };
  ocsp(k2024);
  EXPECT_EQ(check("compromised", k2023).status, RevocationResult::Status::kGood);
  ocsp(k2024);
  EXPECT_EQ(check("compromised", k2025).status, RevocationResult::Status::kRevoked);
  ocsp(k2024);
  EXPECT_EQ(check("compromised", std::nullopt).status, RevocationResult::Status::kRevoked);
  ocsp(std::nullopt);
  EXPECT_EQ(check("compromised", k2023).status, RevocationResult::Status::kRevoked);
}

// Kept answers (the service's: tests/integration/notation_test.cpp NotationRevocation): while
// current, at most a day, and only answers that decide.
TEST(RevocationCache, AnAnswerIsKeptWhileItIsCurrentAndADayAtMost) {
  RevocationCache cache;
  const std::time_t now = 1'800'000'000;
  cache.keep("good", {RevocationResult::Status::kGood, "", now + 600, std::nullopt}, now);
  cache.keep("stale", {RevocationResult::Status::kGood, "", now, std::nullopt}, now);
  cache.keep(
      "long",
      {RevocationResult::Status::kRevoked, "revoked (CRL x)", now + 30 * 86400, std::nullopt}, now);
  EXPECT_TRUE(cache.find("good", now + 599));
  EXPECT_FALSE(cache.find("good", now + 600));
  EXPECT_FALSE(cache.find("stale", now));
  EXPECT_FALSE(cache.find("other", now));
  ASSERT_TRUE(cache.find("long", now + 86399));
  EXPECT_EQ(cache.find("long", now)->status, RevocationResult::Status::kRevoked);
  EXPECT_FALSE(cache.find("long", now + 86400));
  EXPECT_EQ(cache.size(), 2u);
}

// A kept answer keeps its date: the rule is applied per signature, not once for all (a "good"
// kept for the first signature would show in the others).
TEST_F(Revocation, AKeptAnswerIsReadAgainForEachSigningTime) {
  RevocationCache cache;
  http_.expect([](const HttpRequest&) {
    return testing::respond(200, revokedAnswer("compromised", k2024));
  });
  const CertificateChain chain = {certificateOf("compromised"), certificateOf("ca")};
  const Context ctx{&clock_, {}, std::nullopt};
  EXPECT_EQ(checkRevocation(http_, chain, {std::time(nullptr), k2023, &cache}, ctx).status,
            RevocationResult::Status::kGood);
  EXPECT_EQ(checkRevocation(http_, chain, {std::time(nullptr), k2025, &cache}, ctx).status,
            RevocationResult::Status::kRevoked);
  EXPECT_EQ(checkRevocation(http_, chain, {std::time(nullptr), std::nullopt, &cache}, ctx).status,
            RevocationResult::Status::kRevoked);
  EXPECT_EQ(http_.sent().size(), 1u);
}

// An entry extension marked critical that this does not read makes the certificate's entry
// unreadable: the status is unknown, neither revoked nor good.
TEST_F(Revocation, ACrlWithAnUnknownCriticalEntryExtensionAnswersNothing) {
  http_.expect([](const HttpRequest&) {
    return testing::respond(200, readFile(kFixtures / "critical.crl"));
  });
  const auto result = check("revoked", std::nullopt);
  EXPECT_EQ(result.status, RevocationResult::Status::kUnknown);
  EXPECT_NE(result.detail.find("its entry for the certificate has a critical extension this does "
                               "not know"),
            std::string::npos)
      << result.detail;
}

}  // namespace
}  // namespace pullagent::puller
