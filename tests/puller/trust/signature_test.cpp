// Public keys and cosign payloads. The keys, payload and signatures in data/ were made by
// tests/support/cosign.py with python3-cryptography (`cosign.py fixtures DIR`), never by the
// code under test.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "puller/trust/cosign_signature.h"
#include "puller/trust/public_key.h"

namespace pullagent::puller {
namespace {

const std::filesystem::path kData =
    std::filesystem::path(PULLAGENT_SOURCE_DIR) / "tests/puller/trust/data";

std::string fixture(const std::string& name) {
  std::ifstream in(kData / name, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  EXPECT_FALSE(out.str().empty()) << name;
  return out.str();
}

std::shared_ptr<const PublicKey> key(const std::string& kind) {
  auto loaded = PublicKey::fromPem(fixture(kind + ".pub"), kind + ".pub");
  EXPECT_TRUE(loaded.ok()) << loaded.error().message;
  return loaded.ok() ? loaded.value() : nullptr;
}

TEST(PublicKeys, EachKindVerifiesItsOwnSignatureAndNoOther) {
  const std::string payload = fixture("payload.json");
  const std::vector<std::pair<std::string, std::string>> kinds = {{"ecdsa", "ECDSA P-256"},
                                                                  {"ecdsa-p384", "ECDSA P-384"},
                                                                  {"rsa", "RSA 3072"},
                                                                  {"ed25519", "Ed25519"}};
  for (const auto& [kind, description] : kinds) {
    auto public_key = key(kind);
    ASSERT_NE(public_key, nullptr);
    EXPECT_EQ(public_key->describe(), description);
    EXPECT_TRUE(public_key->verify(payload, fixture(kind + ".sig")).ok()) << kind;
    for (const auto& [other, unused] : kinds) {
      if (other != kind) {
        auto wrong = public_key->verify(payload, fixture(other + ".sig"));
        ASSERT_FALSE(wrong.ok()) << kind << " accepted " << other << "'s signature";
        EXPECT_EQ(wrong.error().code, ErrorCode::kUntrusted);
      }
    }
  }
}

TEST(PublicKeys, OneFlippedBitOfThePayloadOrSignatureFails) {
  std::string payload = fixture("payload.json");
  for (const std::string kind : {"ecdsa", "rsa", "ed25519"}) {
    auto public_key = key(kind);
    ASSERT_NE(public_key, nullptr);
    std::string changed = payload;
    changed[changed.size() / 2] ^= 0x01;
    EXPECT_FALSE(public_key->verify(changed, fixture(kind + ".sig")).ok()) << kind;
    std::string signature = fixture(kind + ".sig");
    signature[signature.size() - 1] ^= 0x01;
    EXPECT_FALSE(public_key->verify(payload, signature).ok()) << kind;
    EXPECT_FALSE(public_key->verify(payload, "").ok()) << kind;
  }
}

TEST(PublicKeys, WeakOrBrokenKeysAreRefusedWithWhereTheyCameFrom) {
  auto weak = PublicKey::fromPem(fixture("rsa-1024.pub"), "policy: default[0].keyPath");
  ASSERT_FALSE(weak.ok());
  EXPECT_EQ(weak.error().message,
            "policy: default[0].keyPath: an RSA key of 1024 bits is too weak (2048 at least)");
  auto garbage = PublicKey::fromPem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
                                    "policy: keyData");
  ASSERT_FALSE(garbage.ok());
  EXPECT_NE(garbage.error().message.find("policy: keyData: not a PEM public key"),
            std::string::npos);
  EXPECT_FALSE(PublicKey::fromPem("", "empty").ok());
}

TEST(CosignPayload, ReadsWhatCosignWritesAndTheTagItIsAttachedUnder) {
  auto claims = parseSimpleSigning(fixture("payload.json"));
  ASSERT_TRUE(claims.ok()) << claims.error().message;
  EXPECT_EQ(claims->docker_reference, "myreg.azurecr.io/app");
  std::string hex;
  for (int i = 0; i < 32; ++i)
    hex += "ab";
  EXPECT_EQ(claims->manifest_digest.str(), "sha256:" + hex);
  EXPECT_EQ(cosignSignatureTag(claims->manifest_digest), "sha256-" + hex + ".sig");
}

TEST(CosignPayload, EveryCriticalFieldIsCheckedAndNamed) {
  const std::string digest = "sha256:" + std::string(64, 'c');
  auto parse = [](const std::string& text) { return parseSimpleSigning(text); };
  auto wrong_type =
      parse(R"({"critical":{"type":"something else","image":{"docker-manifest-digest":")" + digest +
            R"("},"identity":{"docker-reference":"a/b"}}})");
  ASSERT_FALSE(wrong_type.ok());
  EXPECT_EQ(wrong_type.error().code, ErrorCode::kUntrusted);
  EXPECT_NE(wrong_type.error().message.find("critical.type"), std::string::npos)
      << wrong_type.error().message;
  auto bad_digest = parse(
      R"({"critical":{"type":"cosign container image signature","image":{"docker-manifest-digest":"sha256:zz"},"identity":{"docker-reference":"a/b"}}})");
  ASSERT_FALSE(bad_digest.ok());
  EXPECT_NE(bad_digest.error().message.find("critical.image.docker-manifest-digest"),
            std::string::npos)
      << bad_digest.error().message;
  auto no_identity = parse(
      R"({"critical":{"type":"cosign container image signature","image":{"docker-manifest-digest":")" +
      digest + R"("}}})");
  ASSERT_FALSE(no_identity.ok());
  EXPECT_NE(no_identity.error().message.find("critical.identity.docker-reference"),
            std::string::npos)
      << no_identity.error().message;
  EXPECT_FALSE(parse("not json").ok());
  EXPECT_FALSE(parse(std::string(70 * 1024, ' ')).ok());
  // Nested past the payload's depth limit inside "critical": refused before it is walked.
  auto deep = parse(R"({"critical":{"type":"cosign container image signature","x":)" +
                    std::string(100, '[') + std::string(100, ']') + "}}");
  ASSERT_FALSE(deep.ok());
  EXPECT_NE(deep.error().message.find("nested deeper than"), std::string::npos)
      << deep.error().message;
  // containers/image refuses what it does not know in "critical", and so does this.
  auto extra = parse(
      R"({"critical":{"type":"cosign container image signature","image":{"docker-manifest-digest":")" +
      digest + R"("},"identity":{"docker-reference":"a/b"},"also":1}})");
  ASSERT_FALSE(extra.ok());
  EXPECT_NE(extra.error().message.find("critical.also"), std::string::npos)
      << extra.error().message;
}

TEST(CosignSignatureManifest, ReadsEachLayerWithItsAnnotationsAndNamesWhatIsWrong) {
  const std::string digest = "sha256:" + std::string(64, 'e');
  auto layers = parseSignatureManifest(
      R"({"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json"},)"
      R"("layers":[{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json","digest":")" +
      digest + R"(","size":236,"annotations":{"dev.cosignproject.cosign/signature":"MEUC"}}]})");
  ASSERT_TRUE(layers.ok()) << layers.error().message;
  ASSERT_EQ(layers->size(), 1u);
  EXPECT_EQ((*layers)[0].media_type, cosign::kSimpleSigning);
  EXPECT_EQ((*layers)[0].size, 236);
  EXPECT_EQ((*layers)[0].annotations.at(std::string(cosign::kSignatureAnnotation)), "MEUC");

  auto old = parseSignatureManifest(R"({"schemaVersion":1,"layers":[]})");
  ASSERT_FALSE(old.ok());
  EXPECT_NE(old.error().message.find("schemaVersion"), std::string::npos);
  auto bad = parseSignatureManifest(
      R"({"schemaVersion":2,"layers":[{"mediaType":"x","digest":"md5:00","size":1}]})");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("layers[0].digest"), std::string::npos) << bad.error().message;
  auto negative = parseSignatureManifest(
      R"({"schemaVersion":2,"layers":[{"mediaType":"x","digest":")" + digest + R"(","size":-1}]})");
  EXPECT_FALSE(negative.ok());
}

}  // namespace
}  // namespace pullagent::puller
