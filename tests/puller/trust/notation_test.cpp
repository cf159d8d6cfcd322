// Notary Project signatures and Notation trust policies. data/notation-go holds envelopes and
// trust stores the Notary Project's own tests use (made by Notation); data/notation holds this
// project's, made by tests/support/notation.py with python3-cryptography and python3-jwcrypto
// (`notation.py fixtures DIR`), never by the code under test.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <string>

#include "base/clock.h"
#include "base/json_reader.h"
#include "puller/trust/cose_envelope.h"
#include "puller/trust/jws_envelope.h"
#include "puller/trust/notary_signature.h"
#include "puller/trust/notation_policy.h"
#include "puller/trust/referrers.h"
#include "puller/trust/revocation.h"
#include "tests/support/scripted_http.h"
#include "tests/support/temp_dir.h"

namespace pullagent::puller {
namespace {

using testing::readFile;
using testing::ScriptedHttp;
using testing::TempDir;
using testing::writeFile;

const std::filesystem::path kNotationGo =
    std::filesystem::path(PULLAGENT_SOURCE_DIR) / "tests/puller/trust/data/notation-go";
const std::filesystem::path kOurs =
    std::filesystem::path(PULLAGENT_SOURCE_DIR) / "tests/puller/trust/data/notation";

std::time_t nowSeconds() {
  return std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
}

ImageRef notationRef(const std::string& text) {
  auto parsed = ImageRef::parse(text);
  EXPECT_TRUE(parsed.ok()) << text;
  return parsed.value();
}

Descriptor descriptorOf(const std::string& media_type, const std::string& digest, int64_t size) {
  Descriptor descriptor;
  descriptor.media_type = media_type;
  descriptor.digest = Digest::parse(digest).value();
  descriptor.size = size;
  return descriptor;
}

// What notation-go's mock envelopes sign.
const Descriptor kMockSubject =
    descriptorOf("application/vnd.docker.distribution.manifest.v2+json",
                 "sha256:60043cf45eaebc4c0867fea485a039b598f52fd09fd5b07b0b2d2f88fad9d74e", 528);

// One statement for the scope "*", in a policy read against `store`.
std::string statementJson(const std::string& level, const nlohmann::json& stores,
                          const nlohmann::json& identities,
                          const nlohmann::json& overrides = nullptr) {
  nlohmann::json verification = {{"level", level}};
  if (!overrides.is_null())
    verification["override"] = overrides;
  nlohmann::json statement = {
      {"name", "test"}, {"registryScopes", {"*"}}, {"signatureVerification", verification}};
  if (!stores.is_null())
    statement["trustStores"] = stores;
  if (!identities.is_null())
    statement["trustedIdentities"] = identities;
  return nlohmann::json{{"version", "1.0"}, {"trustPolicies", {statement}}}.dump();
}

NotationPolicy notationPolicyOf(const std::string& text, const std::filesystem::path& store) {
  auto parsed = NotationPolicy::parse(text, "trustpolicy.json", store);
  EXPECT_TRUE(parsed.ok()) << parsed.error().message;
  return std::move(parsed).value();
}

std::string notationPolicyError(const std::string& text,
                                const std::filesystem::path& store = kNotationGo / "truststore") {
  auto parsed = NotationPolicy::parse(text, "trustpolicy.json", store);
  EXPECT_FALSE(parsed.ok()) << text;
  return parsed.ok() ? "" : parsed.error().message;
}

// COSE envelopes are the files named *.cose (ours) or cose*.sig (notation-go's); the others are
// JWS.
std::string_view envelopeType(const std::filesystem::path& envelope) {
  return envelope.extension() == ".cose" || envelope.filename().string().starts_with("cose")
             ? notation::kCoseMediaType
             : notation::kJwsMediaType;
}

NotaryOutcome verifyWith(const NotationPolicy& policy, const std::filesystem::path& envelope,
                         const Descriptor& subject, std::time_t at = nowSeconds(),
                         const RevocationCheck& revocation = {}) {
  const NotationTrustPolicy* statement = policy.policyFor(notationRef("reg.io/app:v1"));
  EXPECT_NE(statement, nullptr);
  return verifyNotarySignature(readFile(envelope), envelopeType(envelope), *statement, subject, at,
                               revocation);
}

// Notation's own signatures, against notation-go's trust stores.
class NotationGoEnvelopes : public ::testing::Test {
 protected:
  NotationPolicy strict(const nlohmann::json& stores = {"ca:valid-trust-store"},
                        const std::string& level = "strict",
                        const nlohmann::json& overrides = nullptr) {
    return notationPolicyOf(statementJson(level, stores,
                                          {"x509.subject: C=US, ST=WA, L=Seattle, O=Notary, "
                                           "CN=Notation Test Root"},
                                          overrides),
                            kNotationGo / "truststore");
  }
  std::filesystem::path envelope(const std::string& name) {
    return kNotationGo / "envelopes" / name;
  }
};

TEST_F(NotationGoEnvelopes, AValidSignatureOfTheNotaryX509SchemeVerifies) {
  auto outcome = verifyWith(strict(), envelope("ca_valid_sig_env.json"), kMockSubject);
  EXPECT_FALSE(outcome.failure) << *outcome.failure;
  EXPECT_TRUE(outcome.logged.empty());
  EXPECT_EQ(outcome.signer, "CN=Notation Test Root,O=Notary,L=Seattle,ST=WA,C=US");
}

TEST_F(NotationGoEnvelopes, ASignatureOverOtherBytesFailsIntegrity) {
  // notation-go's invalid envelope: its payload is padded base64url, which JWS does not allow.
  auto outcome = verifyWith(strict(), envelope("ca_invalid_sig_env.json"), kMockSubject);
  ASSERT_TRUE(outcome.failure);
  EXPECT_EQ(*outcome.failure, "integrity: JWS envelope: payload: not base64url");
  // The valid one with its signature's last bytes changed.
  auto tampered = nlohmann::json::parse(readFile(envelope("ca_valid_sig_env.json")));
  std::string signature = tampered["signature"];
  signature.replace(signature.size() - 4, 4, signature.ends_with("AAAA") ? "BBBB" : "AAAA");
  tampered["signature"] = signature;
  TempDir dir;
  writeFile(dir / "tampered.json", tampered.dump());
  outcome = verifyWith(strict(), dir / "tampered.json", kMockSubject);
  ASSERT_TRUE(outcome.failure);
  EXPECT_EQ(outcome.failure->rfind("integrity: the signature does not verify", 0), 0u)
      << *outcome.failure;
}

TEST_F(NotationGoEnvelopes, AnExpiredSignatureIsRefusedUnderStrictAndLoggedUnderPermissive) {
  auto outcome = verifyWith(strict(), envelope("ca_expired_sig_env.json"), kMockSubject);
  ASSERT_TRUE(outcome.failure);
  EXPECT_EQ(*outcome.failure, "expiry: the signature expired at 2022-07-29 23:59:00 UTC");
  outcome = verifyWith(strict({"ca:valid-trust-store"}, "permissive"),
                       envelope("ca_expired_sig_env.json"), kMockSubject);
  EXPECT_FALSE(outcome.failure);
  ASSERT_EQ(outcome.logged.size(), 1u);
  EXPECT_EQ(outcome.logged[0], "expiry: the signature expired at 2022-07-29 23:59:00 UTC");
  // The override of strict: expiry only logged.
  outcome = verifyWith(strict({"ca:valid-trust-store"}, "strict", {{"expiry", "log"}}),
                       envelope("ca_expired_sig_env.json"), kMockSubject);
  EXPECT_FALSE(outcome.failure);
}

TEST_F(NotationGoEnvelopes, AnUnknownCriticalAttributeFailsIntegrity) {
  // Marked critical for a verification plugin this agent does not run.
  auto outcome = verifyWith(strict(), envelope("ca_plugin_sig_env.json"), kMockSubject);
  ASSERT_TRUE(outcome.failure);
  EXPECT_NE(outcome.failure->find("is unknown to this verifier"), std::string::npos)
      << *outcome.failure;
}

TEST_F(NotationGoEnvelopes, TheSigningAuthoritySchemeNeedsASigningAuthorityStore) {
  auto outcome = verifyWith(strict({"signingAuthority:valid-trust-store"}),
                            envelope("sa_valid_sig_env.json"), kMockSubject);
  EXPECT_FALSE(outcome.failure) << *outcome.failure;
  outcome = verifyWith(strict(), envelope("sa_valid_sig_env.json"), kMockSubject);
  ASSERT_TRUE(outcome.failure);
  EXPECT_NE(outcome.failure->find("authenticity: the chain of"), std::string::npos)
      << *outcome.failure;
  EXPECT_NE(outcome.failure->find("signingAuthority trust stores"), std::string::npos);
}

TEST_F(NotationGoEnvelopes, ASignatureOfAnotherManifestFailsIntegrity) {
  for (const auto& subject :
       {descriptorOf(kMockSubject.media_type, "sha256:" + std::string(64, 'a'), 528),
        descriptorOf(kMockSubject.media_type, kMockSubject.digest.str(), 529),
        descriptorOf("application/vnd.oci.image.manifest.v1+json", kMockSubject.digest.str(),
                     528)}) {
    auto outcome = verifyWith(strict(), envelope("ca_valid_sig_env.json"), subject);
    ASSERT_TRUE(outcome.failure);
    EXPECT_EQ(outcome.failure->rfind("integrity: it signs " + kMockSubject.digest.str(), 0), 0u)
        << *outcome.failure;
  }
}

// notation-go's timestamp envelopes: a self-signed signing certificate (CN=alpine, valid
// 2023-05-09 to 2033-05-10) in the ca store, the timestamp by GlobalSign's TSA (2024-06-18).
class NotationGoTimestamps : public NotationGoEnvelopes {
 protected:
  const Descriptor subject_ =
      descriptorOf("application/vnd.docker.distribution.manifest.v2+json",
                   "sha256:c0669ef34cdc14332c0f1ab0c2c01acb91d96014b172f1a76f3a39e63d1f0bda", 528);
  const std::time_t after_expiry_ = notation::parseRfc3339("2034-01-01T00:00:00Z").value();

  NotationPolicy policy(const nlohmann::json& stores, const std::string& verify_timestamp = "") {
    auto text = nlohmann::json::parse(statementJson("strict", stores, {"*"}));
    if (!verify_timestamp.empty())
      text["trustPolicies"][0]["signatureVerification"]["verifyTimestamp"] = verify_timestamp;
    return notationPolicyOf(text.dump(), kNotationGo / "truststore");
  }

  // GlobalSign's TSA chain names OCSP responders and CRLs, which a timestamp's verification asks
  // about: here they answer `answer_`, and every chain asked about is kept in `asked_`.
  RevocationResult answer_;
  std::vector<CertificateChain> asked_;
  NotaryOutcome verifyWith(const NotationPolicy& policy, const std::filesystem::path& envelope,
                           const Descriptor& subject, std::time_t at = nowSeconds()) {
    return puller::verifyWith(
        policy, envelope, subject, at,
        [this](const CertificateChain& chain, std::optional<std::time_t> signing_time) {
          EXPECT_FALSE(signing_time);  // a TSA's chain is asked about without one
          asked_.push_back(chain);
          return answer_;
        });
  }
};

TEST_F(NotationGoTimestamps, ATimestampKeepsASignatureValidAfterItsCertificateExpired) {
  const auto with_tsa = policy({"ca:valid-trust-store", "tsa:test-timestamp"});
  auto outcome = verifyWith(with_tsa, envelope("jwsWithTimestamp.sig"), subject_, after_expiry_);
  EXPECT_FALSE(outcome.failure) << *outcome.failure;
  // The same signature as Notation writes it in COSE.
  outcome = verifyWith(with_tsa, envelope("coseWithTimestamp.sig"), subject_, after_expiry_);
  EXPECT_FALSE(outcome.failure) << *outcome.failure;
  EXPECT_EQ(outcome.signer, "CN=alpine,O=Notary,L=Seattle,ST=WA,C=US");
  EXPECT_TRUE(verifyWith(policy({"ca:valid-trust-store"}), envelope("coseWithTimestamp.sig"),
                         subject_, after_expiry_)
                  .failure);
  // Without a tsa store the timestamp counts for nothing, and the refusal says what would.
  outcome = verifyWith(policy({"ca:valid-trust-store"}), envelope("jwsWithTimestamp.sig"), subject_,
                       after_expiry_);
  ASSERT_TRUE(outcome.failure);
  EXPECT_EQ(outcome.failure->rfind("authenticTimestamp: the certificate \"CN=alpine", 0), 0u)
      << *outcome.failure;
  EXPECT_NE(outcome.failure->find("which a tsa trust store would let count"), std::string::npos);
  // Before the certificate expired, it is valid either way.
  EXPECT_FALSE(
      verifyWith(policy({"ca:valid-trust-store"}), envelope("withoutTimestamp.sig"), subject_)
          .failure);
}

// A kept verdict (VerdictCache) lasts as long as the acceptance holds by the clock: a chain
// judged valid now holds until its first certificate ends, and from that second on the same
// signature fails; a chain judged at a timestamp's time does not end with its certificates.
TEST_F(NotationGoTimestamps, AnAcceptanceHoldsUntilTheChainItWasJudgedByEnds) {
  const auto without_tsa = policy({"ca:valid-trust-store"});
  auto outcome = verifyWith(without_tsa, envelope("withoutTimestamp.sig"), subject_);
  ASSERT_FALSE(outcome.failure) << *outcome.failure;
  ASSERT_TRUE(outcome.holds_until);
  EXPECT_GT(*outcome.holds_until, nowSeconds());
  EXPECT_FALSE(
      verifyWith(without_tsa, envelope("withoutTimestamp.sig"), subject_, *outcome.holds_until - 1)
          .failure);
  auto ended =
      verifyWith(without_tsa, envelope("withoutTimestamp.sig"), subject_, *outcome.holds_until);
  ASSERT_TRUE(ended.failure);
  EXPECT_EQ(ended.failure->rfind("authenticTimestamp: ", 0), 0u) << *ended.failure;
  // Judged at the timestamp's time, it does not end with the certificates: only the answer
  // about the TSA's revocation is asked again, an hour on.
  const auto with_tsa = policy({"ca:valid-trust-store", "tsa:test-timestamp"});
  outcome = verifyWith(with_tsa, envelope("jwsWithTimestamp.sig"), subject_, after_expiry_);
  ASSERT_FALSE(outcome.failure) << *outcome.failure;
  ASSERT_TRUE(outcome.holds_until);
  EXPECT_EQ(*outcome.holds_until, after_expiry_ + 3600);
}

TEST_F(NotationGoTimestamps, WithATsaStoreATimestampIsRequiredUnlessOnlyAfterExpiry) {
  const auto always = policy({"ca:valid-trust-store", "tsa:test-timestamp"});
  auto outcome = verifyWith(always, envelope("withoutTimestamp.sig"), subject_);
  ASSERT_TRUE(outcome.failure);
  EXPECT_EQ(*outcome.failure,
            "authenticTimestamp: the statement verifies timestamps (it names a tsa trust store), "
            "and the signature has none");
  const auto after_expiry =
      policy({"ca:valid-trust-store", "tsa:test-timestamp"}, "afterCertExpiry");
  EXPECT_FALSE(verifyWith(after_expiry, envelope("withoutTimestamp.sig"), subject_).failure);
  EXPECT_TRUE(
      verifyWith(after_expiry, envelope("withoutTimestamp.sig"), subject_, after_expiry_).failure);
}

// notation-go's verifyTimestamp: the TSA's own chain is asked about, without a signing time, and
// a revoked or unknown status fails the timestamp.
TEST_F(NotationGoTimestamps, ATimestampCountsOnlyWhileItsAuthorityIsNotRevoked) {
  const auto with_tsa = policy({"ca:valid-trust-store", "tsa:test-timestamp"});
  auto outcome = verifyWith(with_tsa, envelope("jwsWithTimestamp.sig"), subject_, after_expiry_);
  ASSERT_FALSE(outcome.failure) << *outcome.failure;
  ASSERT_EQ(asked_.size(), 1u);
  // From the TSA's certificate up to the tsa store's.
  ASSERT_GE(asked_[0].size(), 2u);
  EXPECT_EQ(asked_[0].front()->subject(),
            "CN=Globalsign TSA for Advanced - G4 - 202311,O=GlobalSign nv-sa,C=BE")
      << asked_[0].front()->subject();
  EXPECT_TRUE(asked_[0].back()->selfSigned());
  // An acceptance that took a revocation answer is taken again within the hour.
  ASSERT_TRUE(outcome.holds_until);
  EXPECT_EQ(*outcome.holds_until, after_expiry_ + 3600);

  answer_ = {RevocationResult::Status::kRevoked, "the certificate \"CN=TSA\" is revoked (OCSP x)"};
  outcome = verifyWith(with_tsa, envelope("coseWithTimestamp.sig"), subject_, after_expiry_);
  ASSERT_TRUE(outcome.failure);
  EXPECT_EQ(*outcome.failure,
            "authenticTimestamp: the timestamp's authority: the certificate \"CN=TSA\" is revoked "
            "(OCSP x)");
  answer_ = {RevocationResult::Status::kUnknown, "revocation status unknown"};
  outcome = verifyWith(with_tsa, envelope("jwsWithTimestamp.sig"), subject_, after_expiry_);
  ASSERT_TRUE(outcome.failure);
  EXPECT_EQ(outcome.failed_check, "authenticTimestamp");

  // With no network at hand the status cannot be had: the timestamp does not count.
  outcome = puller::verifyWith(with_tsa, envelope("jwsWithTimestamp.sig"), subject_, after_expiry_);
  ASSERT_TRUE(outcome.failure);
  EXPECT_NE(outcome.failure->find("names OCSP responders or CRLs, and no network is at hand"),
            std::string::npos)
      << *outcome.failure;
  // The revocation check's level does not decide it: skipped, the TSA is still asked.
  asked_.clear();
  answer_ = {};
  auto skipping = nlohmann::json::parse(statementJson(
      "strict", {"ca:valid-trust-store", "tsa:test-timestamp"}, {"*"}, {{"revocation", "skip"}}));
  EXPECT_FALSE(verifyWith(notationPolicyOf(skipping.dump(), kNotationGo / "truststore"),
                          envelope("jwsWithTimestamp.sig"), subject_, after_expiry_)
                   .failure);
  EXPECT_EQ(asked_.size(), 1u);
  // A signature refused already (an untrusted identity, enforced) asks nothing more.
  asked_.clear();
  auto stranger =
      nlohmann::json::parse(statementJson("strict", {"ca:valid-trust-store", "tsa:test-timestamp"},
                                          {"x509.subject: C=US, ST=WA, O=Someone Else"}));
  EXPECT_TRUE(verifyWith(notationPolicyOf(stranger.dump(), kNotationGo / "truststore"),
                         envelope("jwsWithTimestamp.sig"), subject_, after_expiry_)
                  .failure);
  EXPECT_TRUE(asked_.empty());
  // A timestamp that is not verified (afterCertExpiry, certificates still valid) asks nothing.
  asked_.clear();
  EXPECT_FALSE(verifyWith(policy({"ca:valid-trust-store", "tsa:test-timestamp"}, "afterCertExpiry"),
                          envelope("jwsWithTimestamp.sig"), subject_)
                   .failure);
  EXPECT_TRUE(asked_.empty());
}

// A signing authority vouches for its signing time: a certificate revoked with an
// invalidityDate after it still counts (notation-go's verifyRevocation), end to end from the
// envelope to the CRL. The "compromised" signer's CRL entry dates the compromise 2024-01-01
// (tests/support/notation.py revocation-fixtures).
TEST(SigningAuthorityRevocation, ASignatureMadeBeforeTheKeyWasCompromisedStillCounts) {
  const auto fixtures =
      std::filesystem::path(PULLAGENT_SOURCE_DIR) / "tests/puller/trust/data/revocation";
  const auto subject_json = nlohmann::json::parse(readFile(fixtures / "subject.json"));
  const Descriptor subject =
      descriptorOf(subject_json["mediaType"], subject_json["digest"], subject_json["size"]);
  const auto policy = notationPolicyOf(statementJson("strict", {"signingAuthority:acme"}, {"*"}),
                                       fixtures / "truststore");
  SystemClock clock;
  ScriptedHttp http;
  std::vector<std::optional<std::time_t>> signing_times;
  const RevocationCheck ask = [&](const CertificateChain& chain,
                                  std::optional<std::time_t> signing_time) {
    signing_times.push_back(signing_time);
    // Its OCSP responder fails; the CRL decides.
    http.expect([](const HttpRequest&) { return testing::respond(500); });
    http.expect([&](const HttpRequest&) {
      return testing::respond(200, readFile(fixtures / "revocation.crl"));
    });
    return checkRevocation(http, chain, {nowSeconds(), signing_time, nullptr},
                           Context{&clock, {}, std::nullopt});
  };
  auto before =
      verifyWith(policy, fixtures / "compromised-signed-2023.jws", subject, nowSeconds(), ask);
  EXPECT_FALSE(before.failure) << *before.failure;
  auto after =
      verifyWith(policy, fixtures / "compromised-signed-2024.jws", subject, nowSeconds(), ask);
  ASSERT_TRUE(after.failure);
  EXPECT_EQ(*after.failure,
            "revocation: the certificate \"CN=acme-compromised,O=Acme,L=Seattle,ST=WA,C=US\" is "
            "revoked (CRL http://127.0.0.1:9/revocation.crl)");
  ASSERT_EQ(signing_times.size(), 2u);
  EXPECT_EQ(signing_times[0], notation::parseRfc3339("2023-06-01T00:00:00Z").value());
  EXPECT_EQ(signing_times[1], notation::parseRfc3339("2024-06-01T00:00:00Z").value());
}

TEST_F(NotationGoTimestamps, ATimestampOverOtherBytesOrByAnUntrustedAuthorityFails) {
  // The token of one envelope moved onto another signature: its imprint does not match.
  auto moved = nlohmann::json::parse(readFile(envelope("withoutTimestamp.sig")));
  moved["header"]["io.cncf.notary.timestampSignature"] = nlohmann::json::parse(
      readFile(envelope("jwsWithTimestamp.sig")))["header"]["io.cncf.notary.timestampSignature"];
  TempDir dir;
  writeFile(dir / "moved.sig", moved.dump());
  const auto with_tsa = policy({"ca:valid-trust-store", "tsa:test-timestamp"});
  auto outcome = verifyWith(with_tsa, dir / "moved.sig", subject_, after_expiry_);
  ASSERT_TRUE(outcome.failure);
  EXPECT_NE(outcome.failure->find("authenticTimestamp: the RFC 3161 timestamp by "),
            std::string::npos)
      << *outcome.failure;
  // A timestamp taken before the signing certificate was valid.
  outcome = verifyWith(with_tsa, envelope("timestampBeforeNotBefore.sig"), subject_);
  ASSERT_TRUE(outcome.failure);
  EXPECT_NE(outcome.failure->find("was not valid at the timestamp's time"), std::string::npos)
      << *outcome.failure;
}

TEST_F(NotationGoEnvelopes, TheCoseConformanceEnvelopeIsRefusedForItsUnknownCriticalAttribute) {
  // notation-core-go's COSE conformance message (its expectedOutput): signed by a key its test
  // makes at run time, and again with a critical extended attribute.
  auto conformance = nlohmann::json::parse(readFile(envelope("core-cose-conformance.json")));
  std::string bytes;
  const std::string hex = conformance["expectedOutput"]["cborHex"];
  for (size_t i = 0; i + 1 < hex.size(); i += 2)
    bytes.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  auto parsed = notation::parseCose(bytes);
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.error().message,
            "COSE envelope: protected header: crit[2]: the critical attribute \"signedCritKey1\" "
            "is unknown to this verifier");
}

TEST_F(NotationGoEnvelopes, TheConformanceEnvelopeIsRefusedForItsUnknownCriticalAttribute) {
  // notation-core-go's conformance envelope marks an extended attribute critical (and has no
  // chain): the specification says such an envelope fails.
  auto parsed = notation::parseJws(readFile(envelope("core-jws-conformance.json")));
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.error().message,
            "JWS protected header: crit[1]: the critical attribute \"signedCritKey1\" is unknown "
            "to this verifier");
}

// This project's signers (data/notation), their subject and a policy trusting the Acme root.
class OurSigners {
 protected:
  OurSigners() {
    auto parsed = parseJson(readFile(kOurs / "subject.json"), "subject");
    EXPECT_TRUE(parsed.ok());
    subject_ = parseDescriptor(JsonReader(*parsed, "subject")).value();
  }
  NotationPolicy policy(const std::string& level = "strict",
                        const nlohmann::json& identities = {"x509.subject: C=US, ST=WA, O=Acme"},
                        const nlohmann::json& overrides = nullptr,
                        const nlohmann::json& stores = {"ca:acme"}) {
    return notationPolicyOf(statementJson(level, stores, identities, overrides),
                            kOurs / "truststore");
  }
  Descriptor subject_;
  SystemClock clock_;
};

// One signer per rule of the Notary Project's X.509 profile, each in both envelopes (the
// parameter: "jws" or "cose").
class OurEnvelopes : public ::testing::TestWithParam<std::string>, protected OurSigners {
 protected:
  std::filesystem::path envelope(const std::string& signer) {
    return kOurs / (signer + "." + GetParam());
  }
  NotaryOutcome verify(const NotationPolicy& with, const std::string& signer) {
    return verifyWith(with, envelope(signer), subject_);
  }
  std::string failure(const NotationPolicy& with, const std::string& signer) {
    auto outcome = verify(with, signer);
    EXPECT_TRUE(outcome.failure) << signer;
    return outcome.failure.value_or("");
  }
};

TEST_P(OurEnvelopes, RsaPssAndEcdsaSignaturesByTheTrustedCaVerify) {
  const auto strict = policy();
  for (const std::string signer : {"ecdsa", "rsa", "rsa3072"}) {
    auto outcome = verify(strict, signer);
    EXPECT_FALSE(outcome.failure) << signer << ": " << *outcome.failure;
    EXPECT_EQ(outcome.signer, "CN=acme-" + signer + ",O=Acme,L=Seattle,ST=WA,C=US");
  }
}

TEST_P(OurEnvelopes, EachBrokenRuleIsNamed) {
  const auto strict = policy();
  EXPECT_EQ(failure(strict, "serverauth"),
            "integrity: the signing certificate \"CN=acme-serverauth,O=Acme,L=Seattle,ST=WA,C=US\""
            ": its extendedKeyUsage allows more than code signing (serverAuth, clientAuth, "
            "emailProtection, timeStamping, OCSPSigning or any)");
  EXPECT_EQ(failure(strict, "sha1"),
            "integrity: the certificate \"CN=acme-sha1,O=Acme,L=Seattle,ST=WA,C=US\" is signed "
            "with SHA1; the Notary Project accepts SHA-256, SHA-384 and SHA-512 only");
  EXPECT_EQ(failure(strict, "wrongalg"),
            "integrity: the algorithm PS256 does not fit the certificate's key (PS384)");
  EXPECT_EQ(failure(strict, "unknowncrit"),
            std::string("integrity: ") +
                (GetParam() == "jws" ? "JWS protected header" : "COSE envelope: protected header") +
                ": crit[1]: the critical attribute \"io.example.unknownCritical\" is unknown to "
                "this verifier");
  EXPECT_EQ(failure(strict, "sigexpired"),
            "expiry: the signature expired at 2021-01-01 00:00:00 UTC");
  EXPECT_EQ(failure(strict, "untrusted").rfind("authenticity: the chain of \"CN=acme-untrusted", 0),
            0u);
  EXPECT_EQ(failure(strict, "mallory-org"),
            "authenticity: the signing certificate \"CN=acme-ecdsa,O=Mallory,L=Seattle,ST=WA,C=US\""
            " is none of the trusted identities");
  EXPECT_EQ(
      failure(strict, "expired")
          .rfind("authenticTimestamp: the certificate \"CN=acme-expired,O=Acme,L=Seattle,ST=WA,"
                 "C=US\" is not valid at ",
                 0),
      0u);
  EXPECT_EQ(failure(strict, "revocable"),
            "revocation: the chain names OCSP responders or CRLs, and no network is at hand to "
            "ask them");
}

TEST_P(OurEnvelopes, RevocationIsAskedOnlyForAChainATrustStoreVouchesFor) {
  // The revocable signer names an OCSP responder (http://127.0.0.1:9/ocsp).
  ScriptedHttp http;
  http.expect([](const HttpRequest&) { return testing::respond(500); });
  const auto strict = policy();
  const RevocationCheck ask = [&](const CertificateChain& chain,
                                  std::optional<std::time_t> signing_time) {
    EXPECT_FALSE(signing_time);  // notary.x509: the signing time is the signer's word only
    return checkRevocation(http, chain, {nowSeconds(), signing_time, nullptr},
                           Context{&clock_, {}, std::nullopt});
  };
  auto outcome = verifyNotarySignature(
      readFile(envelope("revocable")), envelopeType(envelope("revocable")),
      *strict.policyFor(notationRef("reg.io/a:v1")), subject_, nowSeconds(), ask);
  ASSERT_TRUE(outcome.failure);
  EXPECT_EQ(*outcome.failure,
            "revocation: the certificate \"CN=acme-revocable,O=Acme,L=Seattle,ST=WA,C=US\": "
            "revocation status unknown (OCSP http://127.0.0.1:9/ocsp: HTTP 500)");
  ASSERT_EQ(http.sent().size(), 1u);
  EXPECT_EQ(http.sent()[0].method, "POST");
  EXPECT_EQ(http.sent()[0].url, "http://127.0.0.1:9/ocsp");
  // Garbage for an answer is no answer.
  http.expect([](const HttpRequest&) { return testing::respond(200, "not DER"); });
  outcome = verifyNotarySignature(
      readFile(envelope("revocable")), envelopeType(envelope("revocable")),
      *strict.policyFor(notationRef("reg.io/a:v1")), subject_, nowSeconds(), ask);
  ASSERT_TRUE(outcome.failure);
  EXPECT_NE(outcome.failure->find("not an OCSP response"), std::string::npos) << *outcome.failure;
  // A statement whose identities the signer is not: its services are not asked.
  const auto other = policy("audit", {"x509.subject: C=US, ST=WA, O=Other"});
  outcome = verifyNotarySignature(
      readFile(envelope("revocable")), envelopeType(envelope("revocable")),
      *other.policyFor(notationRef("reg.io/a:v1")), subject_, nowSeconds(), ask);
  EXPECT_FALSE(outcome.failure);
  EXPECT_EQ(outcome.logged.size(), 2u);
  EXPECT_EQ(http.sent().size(), 2u);
}

TEST_P(OurEnvelopes, LevelsAndOverridesDecideWhatOnlyGetsLogged) {
  // permissive: authenticTimestamp, expiry and revocation logged.
  const auto permissive = policy("permissive");
  for (const std::string signer : {"expired", "sigexpired", "revocable"}) {
    auto outcome = verify(permissive, signer);
    EXPECT_FALSE(outcome.failure) << signer << ": " << *outcome.failure;
    EXPECT_EQ(outcome.logged.size(), 1u) << signer;
  }
  EXPECT_TRUE(verify(permissive, "untrusted").failure);
  EXPECT_TRUE(verify(permissive, "serverauth").failure);  // integrity, at every level
  // audit: authenticity logged too, integrity still enforced.
  const auto audit = policy("audit");
  EXPECT_FALSE(verify(audit, "untrusted").failure);
  EXPECT_FALSE(verify(audit, "mallory-org").failure);
  EXPECT_TRUE(verify(audit, "sha1").failure);
  // strict with revocation skipped: the revocable signer passes, nothing logged.
  auto outcome =
      verify(policy("strict", {"x509.subject: C=US, ST=WA, O=Acme"}, {{"revocation", "skip"}}),
             "revocable");
  EXPECT_FALSE(outcome.failure);
  EXPECT_TRUE(outcome.logged.empty());
  // Any identity.
  EXPECT_FALSE(verify(policy("strict", {"*"}), "mallory-org").failure);
  // The other store trusts only the other root.
  EXPECT_FALSE(verify(policy("strict", {"*"}, nullptr, {"ca:mallory"}), "untrusted").failure);
  EXPECT_TRUE(verify(policy("strict", {"*"}, nullptr, {"ca:mallory"}), "ecdsa").failure);
}

std::string envelopeForm(const ::testing::TestParamInfo<std::string>& form) {
  return form.param;
}
INSTANTIATE_TEST_SUITE_P(BothEnvelopes, OurEnvelopes, ::testing::Values("jws", "cose"),
                         envelopeForm);

// COSE messages no signer writes (tests/support/notation.py COSE_BREAKAGES, each made from a
// valid one by the ECDSA signer).
class OurCoseMessages : public ::testing::Test, protected OurSigners {
 protected:
  std::string failure(const std::string& name, const std::string& bytes) {
    const auto strict = policy();
    auto outcome = verifyNotarySignature(bytes, notation::kCoseMediaType,
                                         *strict.policyFor(notationRef("reg.io/app:v1")), subject_,
                                         nowSeconds());
    EXPECT_TRUE(outcome.failure) << name;
    EXPECT_EQ(outcome.failed_check, "integrity") << name;
    return outcome.failure.value_or("");
  }
  std::string failure(const std::string& name) {
    return failure(name, readFile(kOurs / (name + ".cose")));
  }
};

TEST_F(OurCoseMessages, TheSignatureCoversTheProtectedBytesAsSent) {
  EXPECT_EQ(failure("cose-tampered").rfind("integrity: the signature does not verify", 0), 0u);
  // The same header map spelt in other bytes: not what was signed.
  EXPECT_EQ(failure("cose-respelt").rfind("integrity: the signature does not verify", 0), 0u);
  // The valid message it was made from.
  const auto strict = policy();
  EXPECT_FALSE(verifyNotarySignature(readFile(kOurs / "ecdsa.cose"), notation::kCoseMediaType,
                                     *strict.policyFor(notationRef("reg.io/app:v1")), subject_,
                                     nowSeconds())
                   .failure);
}

TEST_F(OurCoseMessages, AMessageWithTwoReadingsIsRefusedByName) {
  EXPECT_EQ(failure("cose-detached"), "integrity: COSE envelope: payload: is not attached");
  EXPECT_EQ(failure("cose-twice"),
            "integrity: COSE envelope: unprotected header: \"io.cncf.notary.signingScheme\": is "
            "in the protected one too");
  const std::string valid = readFile(kOurs / "ecdsa.cose");
  EXPECT_EQ(failure("trailing", valid + '\0'), "integrity: COSE envelope: CBOR: at byte " +
                                                   std::to_string(valid.size()) +
                                                   ": 1 bytes after the item");
  // The JWS envelope handed over as COSE, and COSE's without its tag.
  EXPECT_EQ(failure("jws", readFile(kOurs / "ecdsa.jws")).rfind("integrity: COSE envelope: ", 0),
            0u);
  EXPECT_EQ(failure("untagged", valid.substr(1)),
            "integrity: COSE envelope: message: is an array, not a COSE_Sign1_Tagged (tag 18)");
}

TEST(NotationPolicies, AStatementIsChosenByItsExactRepositoryBeforeTheWildcard) {
  const std::string text = R"({"version": "1.0", "trustPolicies": [
    {"name": "any", "registryScopes": ["*"], "signatureVerification": {"level": "skip"}},
    {"name": "app", "registryScopes": ["reg.io/team/app", "reg.io/other"],
     "signatureVerification": {"level": "strict"},
     "trustStores": ["ca:acme"], "trustedIdentities": ["*"]}]})";
  auto policy = notationPolicyOf(text, kOurs / "truststore");
  EXPECT_EQ(policy.policyFor(notationRef("reg.io/team/app:v1"))->name, "app");
  EXPECT_EQ(policy.policyFor(notationRef("reg.io/team/app@sha256:" + std::string(64, 'a')))->name,
            "app");
  EXPECT_EQ(policy.policyFor(notationRef("reg.io/other:v1"))->name, "app");
  // A host in other case is the same host.
  EXPECT_EQ(policy.policyFor(notationRef("REG.io/team/app:v1"))->name, "app");
  EXPECT_EQ(policy.policyFor(notationRef("reg.io/team/app2:v1"))->name, "any");
  EXPECT_TRUE(policy.policyFor(notationRef("reg.io/team/app2:v1"))->skip);
  const std::string no_wildcard = R"({"version": "1.0", "trustPolicies": [
    {"name": "app", "registryScopes": ["reg.io/team/app"],
     "signatureVerification": {"level": "audit"},
     "trustStores": ["ca:acme"], "trustedIdentities": ["*"]}]})";
  EXPECT_EQ(
      notationPolicyOf(no_wildcard, kOurs / "truststore").policyFor(notationRef("reg.io/x:v1")),
      nullptr);
}

TEST(NotationPolicies, EveryRuleOfTheFormatIsAConfigErrorNamingItsPath) {
  auto statement = [](const std::string& fields) {
    return R"({"version": "1.0", "trustPolicies": [{"name": "p", "registryScopes": ["*"], )" +
           fields + "}]}";
  };
  const std::string strict = R"("signatureVerification": {"level": "strict"}, )";
  const std::string valid_store = R"("trustStores": ["ca:valid-trust-store"], )";
  EXPECT_EQ(notationPolicyError(R"({"version": "2.0", "trustPolicies": []})"),
            "trustpolicy.json: version: this agent reads version \"1.0\", got \"2.0\"");
  EXPECT_EQ(notationPolicyError(statement(R"("signatureVerification": {"level": "skip"},
                                      "trustStores": ["ca:valid-trust-store"])")),
            "trustpolicy.json: trustPolicies[0]: its level is skip, yet it names trust stores or "
            "trusted identities: remove them");
  EXPECT_EQ(notationPolicyError(statement(strict + R"("trustStores": ["ca:valid-trust-store"])")),
            "trustpolicy.json: trustPolicies[0]: trustStores and trustedIdentities are both "
            "required unless the level is skip");
  EXPECT_EQ(notationPolicyError(
                statement(strict + R"("trustStores": ["ca:../x"], "trustedIdentities": ["*"])")),
            "trustpolicy.json: trustPolicies[0].trustStores[0]: expected ca:<name>, "
            "signingAuthority:<name> or tsa:<name>, got \"ca:../x\"");
  EXPECT_EQ(notationPolicyError(
                statement(strict + R"("trustStores": ["ca:missing"], "trustedIdentities": ["*"])")),
            "trustpolicy.json: trustPolicies[0].trustStores[0]: the trust store " +
                (kNotationGo / "truststore/x509/ca/missing").string() + " does not exist");
  EXPECT_EQ(notationPolicyError(statement(R"("signatureVerification": {"level": "strict",
                                      "override": {"integrity": "log"}}, )" +
                                          valid_store + R"("trustedIdentities": ["*"])")),
            "trustpolicy.json: trustPolicies[0].signatureVerification.override.integrity: "
            "integrity cannot be overridden");
  EXPECT_EQ(notationPolicyError(statement(R"("signatureVerification": {"level": "strict",
                                      "override": {"authenticity": "skip"}}, )" +
                                          valid_store + R"("trustedIdentities": ["*"])")),
            "trustpolicy.json: trustPolicies[0].signatureVerification.override.authenticity: "
            "authenticity can be enforced or logged, not skipped");
  EXPECT_EQ(notationPolicyError(
                statement(strict + valid_store +
                          R"("trustedIdentities": ["*", "x509.subject: C=US, ST=WA, O=A"])")),
            "trustpolicy.json: trustPolicies[0].trustedIdentities[0]: \"*\" must be the only "
            "trusted identity of its statement");
  EXPECT_EQ(notationPolicyError(statement(strict + valid_store +
                                          R"("trustedIdentities": ["x509.subject: C=US, O=A"])")),
            "trustpolicy.json: trustPolicies[0].trustedIdentities[0]: the distinguished name has "
            "no ST (C, ST and O are required)");
  EXPECT_EQ(notationPolicyError(statement(strict + valid_store +
                                          R"("trustedIdentities": ["x509.subject: C=US, ST=WA, O=A",
                                     "x509.subject: C=US, ST=WA, O=A, CN=b"])")),
            "trustpolicy.json: trustPolicies[0].trustedIdentities[1]: overlaps another trusted "
            "identity of its statement");
  EXPECT_EQ(notationPolicyError(R"({"version": "1.0", "trustPolicies": [
    {"name": "p", "registryScopes": ["*", "reg.io/a"], "signatureVerification": {"level": "skip"}}]})"),
            "trustpolicy.json: trustPolicies[0].registryScopes: \"*\" must be the only scope of "
            "its statement");
  EXPECT_EQ(notationPolicyError(R"({"version": "1.0", "trustPolicies": [
    {"name": "p", "registryScopes": ["reg.io/a"], "signatureVerification": {"level": "skip"}},
    {"name": "q", "registryScopes": ["reg.io/a"], "signatureVerification": {"level": "skip"}}]})"),
            "trustpolicy.json: trustPolicies[1].registryScopes[0]: \"reg.io/a\" is the scope of "
            "another statement too");
  EXPECT_EQ(notationPolicyError(R"({"version": "1.0", "trustPolicies": [
    {"name": "p", "registryScopes": ["reg.io/A:v1"], "signatureVerification": {"level": "skip"}}]})"),
            "trustpolicy.json: trustPolicies[0].registryScopes[0]: \"reg.io/A:v1\" is not \"*\" "
            "nor a repository (registry/repository, no tag or digest)");
  EXPECT_EQ(notationPolicyError(statement(R"("signatureVerification": {"levle": "strict"})")),
            "trustpolicy.json: trustPolicies[0].signatureVerification.levle: unknown key");
}

TEST(NotationPolicies, TrustStoresHoldOnlyCertificatesNotationAdmits) {
  auto error = [](const std::string& store) {
    return notationPolicyError(statementJson("strict", {store}, {"*"}));
  };
  EXPECT_NE(error("ca:trust-store-with-leaf-certs")
                .find("is neither a CA certificate nor a self-signed signing certificate"),
            std::string::npos);
  EXPECT_NE(error("ca:trust-store-with-invalid-certs").find("invalid"), std::string::npos);
  EXPECT_NE(error("ca:trust-store-with-directories").find("sub-dir"), std::string::npos);
  EXPECT_NE(error("tsa:test-nonSelfIssued").find("is not a root, which a tsa store holds"),
            std::string::npos);
}

TEST(NotationPolicies, SymbolicLinksInATrustStoreAreRefused) {
  TempDir dir;
  const auto store = dir / "truststore";
  std::filesystem::create_directories(store / "x509/ca/linked");
  std::filesystem::copy_file(kOurs / "truststore/x509/ca/acme/root.pem", dir / "root.pem");
  std::filesystem::create_symlink(dir / "root.pem", store / "x509/ca/linked/root.pem");
  auto text = statementJson("strict", {"ca:linked"}, {"*"});
  EXPECT_NE(
      notationPolicyError(text, store).find("root.pem is a symbolic link, which Notation refuses"),
      std::string::npos);
  // A linked store directory too.
  std::filesystem::remove_all(store / "x509/ca/linked");
  std::filesystem::create_directory_symlink(kOurs / "truststore/x509/ca/acme",
                                            store / "x509/ca/linked");
  EXPECT_NE(notationPolicyError(text, store).find("is a symbolic link, which Notation refuses"),
            std::string::npos);
}

TEST(NotationPolicies, TheDirectoryIsReadAsNotationKeepsIt) {
  TempDir dir;
  std::filesystem::copy(kOurs / "truststore", dir / "truststore",
                        std::filesystem::copy_options::recursive);
  writeFile(dir / "trustpolicy.json", statementJson("strict", {"ca:acme"}, {"*"}));
  auto loaded = NotationPolicy::load(dir.path());
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  EXPECT_EQ(loaded->document(), "notation trust policy " + (dir / "trustpolicy.json").string());
  const auto first = loaded->hash();
  // The newer name wins; and a changed trust store is another hash.
  writeFile(dir / "trustpolicy.oci.json", statementJson("audit", {"ca:acme"}, {"*"}));
  loaded = NotationPolicy::load(dir.path());
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ(loaded->policyFor(notationRef("reg.io/a:v1"))->level, "audit");
  std::filesystem::remove(dir / "trustpolicy.oci.json");
  std::filesystem::copy_file(kOurs / "truststore/x509/ca/mallory/root.pem",
                             dir / "truststore/x509/ca/acme/second.pem");
  loaded = NotationPolicy::load(dir.path());
  ASSERT_TRUE(loaded.ok());
  EXPECT_NE(loaded->hash(), first);
}

TEST(DistinguishedNames, ParsedAsRfc4514WritesThem) {
  auto name = parseDistinguishedName(R"( C=US; S=WA, O=Acme\, Inc., CN=a\2Bb )");
  ASSERT_TRUE(name.ok()) << name.error().message;
  const DistinguishedName expected = {
      {"C", "US"}, {"ST", "WA"}, {"O", "Acme, Inc."}, {"CN", "a+b"}};
  EXPECT_EQ(*name, expected);
  EXPECT_FALSE(parseDistinguishedName("C=US+O=Acme").ok());
  EXPECT_FALSE(parseDistinguishedName("C=US, C=CA").ok());
  EXPECT_FALSE(parseDistinguishedName("C=#0403").ok());
  EXPECT_FALSE(parseDistinguishedName("C=US,").ok());
  EXPECT_FALSE(parseDistinguishedName("").ok());
  EXPECT_TRUE(identityMatches({{"O", "Acme"}}, {{"C", "US"}, {"O", "Acme"}}));
  EXPECT_FALSE(identityMatches({{"O", "acme"}}, {{"C", "US"}, {"O", "Acme"}}));
  // Go's pkix cannot print an emailAddress attribute as Notation reads it; two OUs are a
  // multi-valued attribute to it; of two CNs the last counts.
  EXPECT_FALSE(leafIdentity({{"C", "US"}, {"emailAddress", "a@b"}}));
  EXPECT_FALSE(leafIdentity({{"OU", "a"}, {"OU", "b"}}));
  EXPECT_EQ(leafIdentity({{"CN", "a"}, {"CN", "b"}, {"serialNumber", "7"}}),
            (DistinguishedName{{"CN", "b"}, {"SERIALNUMBER", "7"}}));
}

TEST(Rfc3339, TimesWithZonesAndFractions) {
  EXPECT_EQ(notation::parseRfc3339("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(notation::parseRfc3339("2020-11-09T07:00:00Z"), 1604905200);
  EXPECT_EQ(notation::parseRfc3339("2020-11-09T08:00:00.123+01:00"), 1604905200);
  EXPECT_EQ(notation::parseRfc3339("2020-11-09T06:30:00-00:30"), 1604905200);
  for (const char* bad : {"2020-11-09 07:00:00Z", "2020-02-30T00:00:00Z", "2020-11-09T07:00:00",
                          "2020-11-09T07:00:00+1:00", "2020-11-09T25:00:00Z",
                          "2020-11-09T07:00:00.Z", "2020-11-09T07:00:00Zjunk"})
    EXPECT_FALSE(notation::parseRfc3339(bad)) << bad;
}

TEST(Referrers, OnlySignaturesAreKeptAndTheNewestWhenThereAreTooMany) {
  nlohmann::json index = {{"schemaVersion", 2},
                          {"mediaType", "application/vnd.oci.image.index.v1+json"},
                          {"manifests", nlohmann::json::array()}};
  for (int i = 0; i < 50; ++i) {
    char hex[65];
    std::snprintf(hex, sizeof hex, "%064x", i);
    index["manifests"].push_back(
        {{"mediaType", "application/vnd.oci.image.manifest.v1+json"},
         {"digest", std::string("sha256:") + hex},
         {"size", 100},
         {"artifactType",
          i % 4 == 0 ? "application/vnd.example.sbom" : "application/vnd.cncf.notary.signature"}});
  }
  size_t cut = 0;
  auto referrers = parseReferrers(index.dump(), notation::kSignatureArtifactType, &cut);
  ASSERT_TRUE(referrers.ok()) << referrers.error().message;
  EXPECT_EQ(referrers->size(), kMaxReferrers);
  EXPECT_EQ(cut, 37u - kMaxReferrers);  // 50 entries, 13 of them SBOMs
  EXPECT_EQ(referrers->back().descriptor.digest.hex(), std::string(62, '0') + "31");
  EXPECT_FALSE(parseReferrers(R"({"schemaVersion": 2, "mediaType": "text/plain"})",
                              notation::kSignatureArtifactType)
                   .ok());
}

TEST(Referrers, ASignatureManifestIsTypedByArtifactTypeOrItsConfig) {
  const std::string digest = "sha256:" + std::string(64, 'c');
  const nlohmann::json layer = {
      {"mediaType", "application/jose+json"}, {"digest", digest}, {"size", 10}};
  nlohmann::json oci11 = {
      {"schemaVersion", 2},
      {"mediaType", "application/vnd.oci.image.manifest.v1+json"},
      {"artifactType", "application/vnd.cncf.notary.signature"},
      {"config",
       {{"mediaType", "application/vnd.oci.empty.v1+json"}, {"digest", digest}, {"size", 2}}},
      {"layers", {layer}},
      {"subject", layer}};
  auto parsed = parseArtifactManifest(oci11.dump());
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  EXPECT_EQ(parsed->artifact_type, "application/vnd.cncf.notary.signature");
  ASSERT_TRUE(parsed->subject);
  oci11.erase("artifactType");
  oci11["config"]["mediaType"] = "application/vnd.cncf.notary.signature";
  parsed = parseArtifactManifest(oci11.dump());
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->artifact_type, "application/vnd.cncf.notary.signature");
  oci11["config"]["mediaType"] = "application/vnd.oci.empty.v1+json";
  EXPECT_EQ(parseArtifactManifest(oci11.dump())->artifact_type, "");
}

}  // namespace
}  // namespace pullagent::puller
