// cosign v3's Sigstore bundles: the format read as hostile input, DSSE's pre-authentication
// encoding, the statement, and which signedIdentity rules a bundle (which names no reference)
// can satisfy. Bundles verified end to end against the registry: tests/integration/
// signature_test.cpp (made by tests/support/cosign.py with python3-cryptography).
#include "puller/trust/sigstore_bundle.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <string>

#include "base/base64.h"
#include "puller/trust/containers_policy.h"

namespace pullagent::puller {
namespace {

const std::string kHex(64, 'a');

std::string statementText(
    const std::string& predicate = std::string(sigstore::kCosignSignPredicate)) {
  return nlohmann::json{{"_type", "https://in-toto.io/Statement/v1"},
                        {"subject", {{{"digest", {{"sha256", kHex}}}}}},
                        {"predicateType", predicate},
                        {"predicate", nlohmann::json::object()}}
      .dump();
}

nlohmann::json bundleJson() {
  return {{"mediaType", sigstore::kBundleMediaType},
          {"verificationMaterial", {{"publicKey", {{"hint", "x"}}}, {"tlogEntries", {}}}},
          {"dsseEnvelope",
           {{"payload", encodeBase64(statementText())},
            {"payloadType", sigstore::kInTotoPayloadType},
            {"signatures", {{{"sig", encodeBase64("signature")}, {"keyid", ""}}}}}}};
}

std::string bundleError(const nlohmann::json& bundle) {
  auto parsed = parseSigstoreBundle(bundle.dump());
  EXPECT_FALSE(parsed.ok()) << bundle.dump();
  return parsed.ok() ? "" : parsed.error().message;
}

TEST(SigstoreBundles, ABundleByAKeyIsReadToItsEnvelope) {
  auto parsed = parseSigstoreBundle(bundleJson().dump());
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  EXPECT_EQ(parsed->payload, statementText());
  ASSERT_EQ(parsed->signatures.size(), 1u);
  EXPECT_EQ(parsed->signatures[0], "signature");
  auto statement = parseCosignStatement(parsed->payload);
  ASSERT_TRUE(statement.ok()) << statement.error().message;
  ASSERT_EQ(statement->subjects.size(), 1u);
  EXPECT_EQ(statement->subjects[0].str(), "sha256:" + kHex);
}

TEST(SigstoreBundles, WhatThisAgentDoesNotVerifyIsRefusedByName) {
  auto bundle = bundleJson();
  bundle["mediaType"] = "application/vnd.dev.sigstore.bundle+json;version=0.1";
  EXPECT_EQ(bundleError(bundle),
            "Sigstore bundle: mediaType: \"application/vnd.dev.sigstore.bundle+json;version=0.1\""
            ": this agent reads bundles of v0.3, as cosign v3 writes");
  bundle = bundleJson();
  bundle["verificationMaterial"] = {{"certificate", {{"rawBytes", "MAo="}}}};
  EXPECT_EQ(bundleError(bundle),
            "Sigstore bundle: verificationMaterial: signed with a certificate (keyless or "
            "certificate-based cosign), which this agent does not verify yet; sign with a key "
            "(cosign sign --key)");
  bundle = bundleJson();
  bundle["messageSignature"] = {{"signature", "MAo="}};
  EXPECT_EQ(bundleError(bundle),
            "Sigstore bundle: messageSignature: a blob's signature, not an image's (cosign v3 "
            "signs an image with a DSSE statement)");
  bundle = bundleJson();
  bundle["dsseEnvelope"]["payloadType"] = "text/plain";
  EXPECT_EQ(bundleError(bundle),
            "Sigstore bundle: dsseEnvelope.payloadType: expected \"application/vnd.in-toto+json\"");
  bundle = bundleJson();
  bundle["dsseEnvelope"]["signatures"] = nlohmann::json::array();
  EXPECT_EQ(bundleError(bundle),
            "Sigstore bundle: dsseEnvelope.signatures: expected 1 to 4 signatures");
  EXPECT_EQ(parseSigstoreBundle(std::string(200 * 1024, ' ')).error().message,
            "Sigstore bundle: larger than 131072 bytes");
}

TEST(SigstoreBundles, AnAttestationIsNotASignature) {
  auto statement = parseCosignStatement(statementText("https://slsa.dev/provenance/v1"));
  ASSERT_FALSE(statement.ok());
  EXPECT_EQ(statement.error().message,
            "in-toto statement: predicateType: \"https://slsa.dev/provenance/v1\" is an "
            "attestation, not an image signature (https://sigstore.dev/cosign/sign/v1)");
}

TEST(SigstoreBundles, DssePreAuthenticationEncoding) {
  // The DSSE specification's own example (secure-systems-lab/dsse protocol.md).
  EXPECT_EQ(dssePae("http://example.com/HelloWorld", "hello world"),
            "DSSEv1 29 http://example.com/HelloWorld 11 hello world");
}

TEST(SigstoreBundles, ABundleStandsOnlyForAnImagePulledByDigest) {
  using Rule = SignedIdentity::Rule;
  const auto by_digest = ImageRef::parse("reg.io/app@sha256:" + kHex).value();
  const auto by_tag = ImageRef::parse("reg.io/app:v1").value();
  for (auto rule : {Rule::kMatchRepoDigestOrExact, Rule::kMatchRepository, Rule::kRemapIdentity}) {
    EXPECT_TRUE(checkUnnamedIdentity(SignedIdentity{rule, "", "", ""}, by_digest).ok());
    auto tagged = checkUnnamedIdentity(SignedIdentity{rule, "", "", ""}, by_tag);
    ASSERT_FALSE(tagged.ok());
    EXPECT_NE(tagged.error().message.find("stands only for an image pulled by digest"),
              std::string::npos);
  }
  for (auto rule : {Rule::kMatchExact, Rule::kExactReference, Rule::kExactRepository})
    EXPECT_FALSE(checkUnnamedIdentity(SignedIdentity{rule, "", "", ""}, by_digest).ok());
}

}  // namespace
}  // namespace pullagent::puller
