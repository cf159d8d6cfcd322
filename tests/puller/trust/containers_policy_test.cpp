// containers-policy.json as podman, skopeo and CRI-O read it: scopes, requirements, identities.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "base/base64.h"
#include "puller/trust/containers_policy.h"
#include "puller/trust/verdict_cache.h"

namespace pullagent::puller {
namespace {

const std::filesystem::path kKeys =
    std::filesystem::path(PULLAGENT_SOURCE_DIR) / "tests/puller/trust/data";

std::string keyPath(const std::string& kind) {
  return (kKeys / (kind + ".pub")).string();
}

ImageRef parsedRef(const std::string& text) {
  auto parsed = ImageRef::parse(text);
  EXPECT_TRUE(parsed.ok()) << text;
  return parsed.value();
}

ContainersPolicy policyOf(const std::string& text) {
  auto parsed = ContainersPolicy::parse(text, "policy.json");
  EXPECT_TRUE(parsed.ok()) << parsed.error().message;
  return std::move(parsed).value();
}

std::string errorOf(const std::string& text) {
  auto parsed = ContainersPolicy::parse(text, "policy.json");
  EXPECT_FALSE(parsed.ok()) << text;
  return parsed.ok() ? "" : parsed.error().message;
}

TEST(ContainersPolicy, TheMostSpecificScopeWins) {
  const std::string text = R"({
    "default": [{"type": "reject"}],
    "transports": {
      "docker": {
        "": [{"type": "insecureAcceptAnything"}],
        "myreg.azurecr.io": [{"type": "reject"}],
        "myreg.azurecr.io/team": [{"type": "insecureAcceptAnything"}],
        "myreg.azurecr.io/team/app": [{"type": "reject"}],
        "myreg.azurecr.io/team/app:stable": [{"type": "insecureAcceptAnything"}],
        "*.example.com": [{"type": "reject"}],
        "*.eu.example.com": [{"type": "insecureAcceptAnything"}]
      },
      "docker-daemon": {"": [{"type": "reject"}]}
    }})";
  auto policy = policyOf(text);
  auto scope = [&](const std::string& image) { return policy.scopeFor(parsedRef(image)).name; };
  EXPECT_EQ(scope("myreg.azurecr.io/team/app:stable"), "myreg.azurecr.io/team/app:stable");
  EXPECT_EQ(scope("myreg.azurecr.io/team/app:v2"), "myreg.azurecr.io/team/app");
  EXPECT_EQ(scope("myreg.azurecr.io/team/web:v1"), "myreg.azurecr.io/team");
  EXPECT_EQ(scope("myreg.azurecr.io/other:v1"), "myreg.azurecr.io");
  EXPECT_EQ(scope("reg.eu.example.com/a:v1"), "*.eu.example.com");
  EXPECT_EQ(scope("reg.us.example.com:5000/a:v1"), "*.example.com");
  EXPECT_EQ(scope("ubuntu"), "the docker transport's default (\"\")");
  const auto* requirements =
      policy.scopeFor(parsedRef("myreg.azurecr.io/team/app:v2")).requirements;
  ASSERT_EQ(requirements->size(), 1u);
  EXPECT_EQ((*requirements)[0].type, PolicyRequirement::Type::kReject);
  EXPECT_EQ((*requirements)[0].where,
            "policy.json: transports.docker.myreg.azurecr.io/team/app[0]");

  auto only_default = policyOf(R"({"default": [{"type": "insecureAcceptAnything"}]})");
  EXPECT_EQ(only_default.scopeFor(parsedRef("ubuntu")).name, "default");
}

TEST(ContainersPolicy, KeysAreReadWhenTheFileIsAndChangeItsHash) {
  const std::string by_path =
      R"({"default": [{"type": "sigstoreSigned", "keyPath": ")" + keyPath("ecdsa") + R"("}]})";
  auto policy = policyOf(by_path);
  const auto& requirement = (*policy.scopeFor(parsedRef("a/b:c")).requirements)[0];
  EXPECT_EQ(requirement.type, PolicyRequirement::Type::kSigstoreSigned);
  ASSERT_EQ(requirement.keys.size(), 1u);
  EXPECT_EQ(requirement.keys[0]->describe(), "ECDSA P-256");
  EXPECT_EQ(requirement.identity.rule, SignedIdentity::Rule::kMatchRepoDigestOrExact);

  auto two = policyOf(R"({"default": [{"type": "sigstoreSigned", "keyPaths": [")" +
                      keyPath("ecdsa") + R"(", ")" + keyPath("ed25519") +
                      R"("], "signedIdentity": {"type": "matchRepository"}}]})");
  EXPECT_EQ((*two.scopeFor(parsedRef("a/b:c")).requirements)[0].keys.size(), 2u);
  EXPECT_NE(two.hash(), policy.hash());

  std::ifstream in(keyPath("rsa"));
  std::ostringstream pem;
  pem << in.rdbuf();
  auto inline_key = policyOf(R"({"default": [{"type": "sigstoreSigned", "keyData": ")" +
                             encodeBase64(pem.str()) + R"("}]})");
  EXPECT_EQ((*inline_key.scopeFor(parsedRef("a/b:c")).requirements)[0].keys[0]->describe(),
            "RSA 3072");
}

TEST(ContainersPolicy, WhatItDoesNotCheckRefusesTheImagesItCoversNotTheFile) {
  auto policy = policyOf(R"({
    "default": [{"type": "insecureAcceptAnything"}],
    "transports": {"docker": {
      "gpg.example.com": [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": "/k.gpg"}],
      "keyless.example.com": [{"type": "sigstoreSigned", "fulcio": {"caPath": "/f.pem",
          "oidcIssuer": "https://issuer", "subjectEmail": "a@b"}, "rekorPublicKeyPath": "/r.pub"}]
    }}})");
  const auto& gpg = (*policy.scopeFor(parsedRef("gpg.example.com/a:v1")).requirements)[0];
  EXPECT_EQ(gpg.type, PolicyRequirement::Type::kUnsupported);
  EXPECT_NE(gpg.unsupported.find("signedBy (GPG"), std::string::npos);
  const auto& keyless = (*policy.scopeFor(parsedRef("keyless.example.com/a:v1")).requirements)[0];
  EXPECT_EQ(keyless.type, PolicyRequirement::Type::kUnsupported);
  EXPECT_NE(keyless.unsupported.find("fulcio"), std::string::npos);
}

TEST(ContainersPolicy, MistakesAreConfigErrorsNamingThePath) {
  EXPECT_EQ(errorOf(R"({"transports": {}})"),
            "policy.json: default: is required (containers-policy.json(5))");
  EXPECT_EQ(errorOf(R"({"default": []})"),
            "policy.json: default: an empty list of requirements (say \"reject\" or "
            "\"insecureAcceptAnything\")");
  EXPECT_NE(errorOf(R"({"default": [{"type": "insecureAcceptAnythin"}]})")
                .find("policy.json: default[0].type: expected insecureAcceptAnything"),
            std::string::npos);
  EXPECT_EQ(errorOf(R"({"default": [{"type": "reject", "keyPath": "/x"}]})"),
            "policy.json: default[0].keyPath: unknown key");
  EXPECT_NE(errorOf(R"({"default": [{"type": "sigstoreSigned"}]})")
                .find("exactly one of keyPath, keyPaths, keyData and fulcio"),
            std::string::npos);
  EXPECT_NE(errorOf(R"({"default": [{"type": "sigstoreSigned", "keyPath": "relative.pub"}]})")
                .find("policy.json: default[0].keyPath: \"relative.pub\" is not an absolute path"),
            std::string::npos);
  EXPECT_NE(errorOf(R"({"default": [{"type": "sigstoreSigned", "keyPath": "/nonexistent/k.pub"}]})")
                .find("cannot read \"/nonexistent/k.pub\""),
            std::string::npos);
  EXPECT_NE(errorOf(R"({"default": [{"type": "sigstoreSigned", "keyPath": ")" +
                    keyPath("rsa-1024") + R"("}]})")
                .find("too weak"),
            std::string::npos);
  // Scopes: a host or a normalised reference; one that could never match is refused with the
  // form that would.
  auto scopeError = [](const std::string& scope) {
    return errorOf(R"({"default": [{"type": "reject"}], "transports": {"docker": {")" + scope +
                   R"(": [{"type": "reject"}]}}})");
  };
  EXPECT_NE(scopeError("Not A Ref!").find("the scope is neither a registry host nor a reference"),
            std::string::npos);
  EXPECT_NE(
      scopeError("docker.io/nginx").find("the scope is compared as \"docker.io/library/nginx\""),
      std::string::npos);
  EXPECT_NE(scopeError("reg.io/a/Bad").find("the scope is not a reference"), std::string::npos);
  // remapIdentity prefixes that could never match, and an exactReference without tag or digest.
  for (const char* identity :
       {R"({"type": "remapIdentity", "prefix": "", "signedPrefix": "reg.io"})",
        R"({"type": "remapIdentity", "prefix": "mirror.io/", "signedPrefix": "reg.io"})",
        R"({"type": "remapIdentity", "prefix": "mirror.io", "signedPrefix": "reg.io/a:v1"})",
        R"({"type": "exactReference", "dockerReference": "reg.io/app"})"}) {
    EXPECT_NE(errorOf(R"({"default": [{"type": "sigstoreSigned", "keyPath": ")" + keyPath("ecdsa") +
                      R"(", "signedIdentity": )" + identity + "}]}")
                  .find("default[0].signedIdentity."),
              std::string::npos)
        << identity;
  }
  EXPECT_NE(
      errorOf(
          R"({"default": [{"type": "reject"}], "transports": {"docker": {"*example.com": [{"type": "reject"}]}}})")
          .find("a wildcard scope"),
      std::string::npos);
  EXPECT_NE(errorOf(R"({"default": [{"type": "sigstoreSigned", "keyPath": ")" + keyPath("ecdsa") +
                    R"(", "signedIdentity": {"type": "matchEverything"}}]})")
                .find("default[0].signedIdentity.type"),
            std::string::npos);
  EXPECT_NE(errorOf("[1, 2]").find("expected an object"), std::string::npos);
  EXPECT_NE(errorOf("{").find("policy.json"), std::string::npos);
}

TEST(SignedIdentityRules, AsContainersImageDecidesThem) {
  using Rule = SignedIdentity::Rule;
  auto check = [](SignedIdentity identity, const std::string& pulled,
                  const std::string& signed_ref) {
    return checkSignedIdentity(identity, parsedRef(pulled), signed_ref).ok();
  };
  const std::string digest = "@sha256:" + std::string(64, 'd');
  SignedIdentity by_default;
  // Pulled by tag: the whole reference; a bare repository (cosign's usual) never matches.
  EXPECT_TRUE(check(by_default, "reg.io/team/app:v1", "reg.io/team/app:v1"));
  EXPECT_FALSE(check(by_default, "reg.io/team/app:v1", "reg.io/team/app:v2"));
  EXPECT_FALSE(check(by_default, "reg.io/team/app:v1", "reg.io/team/app"));
  // Pulled by digest alone: the repository.
  EXPECT_TRUE(check(by_default, "reg.io/team/app" + digest, "reg.io/team/app:v9"));
  EXPECT_FALSE(check(by_default, "reg.io/team/app" + digest, "reg.io/team/other:v9"));
  // Docker's normalisation applies to both sides.
  EXPECT_TRUE(check(by_default, "ubuntu:22.04", "docker.io/library/ubuntu:22.04"));

  const SignedIdentity repository{Rule::kMatchRepository, "", "", ""};
  EXPECT_TRUE(check(repository, "reg.io/team/app:v1", "reg.io/team/app"));
  EXPECT_TRUE(check(repository, "reg.io/team/app:v1", "reg.io/team/app:v7"));
  EXPECT_FALSE(check(repository, "reg.io/team/app:v1", "reg.io/team/apps"));
  EXPECT_FALSE(check(repository, "reg.io/team/app:v1", "other.io/team/app"));

  const SignedIdentity exact{Rule::kMatchExact, "", "", ""};
  EXPECT_TRUE(check(exact, "reg.io/app:v1", "reg.io/app:v1"));
  EXPECT_FALSE(check(exact, "reg.io/app:v1", "reg.io/app"));

  const SignedIdentity reference{Rule::kExactReference, "reg.io/golden/app:v1", "", ""};
  EXPECT_TRUE(check(reference, "mirror.io/whatever:v3", "reg.io/golden/app:v1"));
  EXPECT_FALSE(check(reference, "mirror.io/whatever:v3", "reg.io/golden/app:v2"));

  const SignedIdentity exact_repository{Rule::kExactRepository, "reg.io/golden/app", "", ""};
  EXPECT_TRUE(check(exact_repository, "mirror.io/x:v3", "reg.io/golden/app:v1"));
  EXPECT_FALSE(check(exact_repository, "mirror.io/x:v3", "reg.io/golden/other:v1"));

  // A mirror's images stand for the origin's signatures.
  const SignedIdentity remap{Rule::kRemapIdentity, "", "mirror.local/origin", "reg.io"};
  EXPECT_TRUE(check(remap, "mirror.local/origin/team/app:v1", "reg.io/team/app:v1"));
  EXPECT_FALSE(check(remap, "mirror.local/origin/team/app:v1", "reg.io/team/app:v2"));
  // The prefix matches whole path components only.
  EXPECT_FALSE(check(remap, "mirror.local/originals/app:v1", "reg.ioals/app:v1"));

  auto said = checkSignedIdentity(by_default, parsedRef("reg.io/team/app:v1"), "reg.io/team/app");
  ASSERT_FALSE(said.ok());
  EXPECT_EQ(said.error().message,
            "the signature is for \"reg.io/team/app\", the policy wants exactly "
            "reg.io/team/app:v1 (matchRepoDigestOrExact)");
  EXPECT_FALSE(checkSignedIdentity(by_default, parsedRef("reg.io/a:v1"), "Not A Reference").ok());
}

TEST(VerdictCache, HoldsOnlyForTheSamePolicyNameDigestAndPlatform) {
  const TrustPolicy lenient(std::make_shared<const ContainersPolicy>(
                                policyOf(R"({"default": [{"type": "insecureAcceptAnything"}]})")),
                            nullptr);
  const TrustPolicy strict(
      std::make_shared<const ContainersPolicy>(policyOf(R"({"default": [{"type": "reject"}]})")),
      nullptr);
  const auto image = parsedRef("reg.io/app:v1");
  const auto digest = Digest::parse("sha256:" + std::string(64, 'a')).value();
  const auto other = Digest::parse("sha256:" + std::string(64, 'b')).value();
  const std::time_t now = 1'800'000'000;
  VerdictCache cache;
  EXPECT_FALSE(cache.accepted(lenient, image, digest, "linux/amd64", now));
  cache.remember(lenient, image, digest, "linux/amd64", std::nullopt);
  EXPECT_TRUE(cache.accepted(lenient, image, digest, "linux/amd64", now));
  EXPECT_FALSE(cache.accepted(strict, image, digest, "linux/amd64", now));  // another policy
  EXPECT_FALSE(cache.accepted(lenient, parsedRef("reg.io/app:v2"), digest, "linux/amd64", now));
  EXPECT_FALSE(cache.accepted(lenient, image, other, "linux/amd64", now));
  EXPECT_FALSE(cache.accepted(lenient, image, digest, "linux/arm64", now));
  // Full: the other policies' verdicts go first.
  for (int i = 0; i < 5000; ++i)
    cache.remember(strict, parsedRef("reg.io/app:t" + std::to_string(i)), digest, "linux/amd64",
                   std::nullopt);
  EXPECT_FALSE(cache.accepted(lenient, image, digest, "linux/amd64", now));
  EXPECT_TRUE(cache.accepted(strict, parsedRef("reg.io/app:t4999"), digest, "linux/amd64", now));
}

// An acceptance that holds until a time (a signature's expiry, its certificate's end) is not
// one from that time on: the refresh verifies again instead of trusting what was.
TEST(VerdictCache, AnAcceptanceEndsWhenItsSignatureStopsHolding) {
  const TrustPolicy lenient(std::make_shared<const ContainersPolicy>(
                                policyOf(R"({"default": [{"type": "insecureAcceptAnything"}]})")),
                            nullptr);
  const auto image = parsedRef("reg.io/app:v1");
  const auto digest = Digest::parse("sha256:" + std::string(64, 'a')).value();
  const std::time_t until = 1'800'000'000;
  VerdictCache cache;
  cache.remember(lenient, image, digest, "linux/amd64", until);
  EXPECT_TRUE(cache.accepted(lenient, image, digest, "linux/amd64", until - 1));
  EXPECT_FALSE(cache.accepted(lenient, image, digest, "linux/amd64", until));
  EXPECT_FALSE(cache.accepted(lenient, image, digest, "linux/amd64", until + 3600));
  // Taken again, it holds again, for as long as the new verdict says.
  cache.remember(lenient, image, digest, "linux/amd64", std::nullopt);
  EXPECT_TRUE(cache.accepted(lenient, image, digest, "linux/amd64", until + 3600));
}

}  // namespace
}  // namespace pullagent::puller
