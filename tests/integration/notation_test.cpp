// Notary Project signatures against Debian's docker-registry: JWS and COSE envelopes made by the
// stack with python3-cryptography, python3-jwcrypto and python3-cbor2
// (tests/support/notation.py), listed through the tag
// schema's index (the registry has no referrers API), a Notation directory as `notation` keeps
// it, and `pullagent pull --notation-dir`. Every refused image is refused before any of its
// layers is asked for (the recording proxy in front of the registry says so), and the refusal
// names the check that failed.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/daemon_fixture.h"
#include "tests/integration/pull_fixture.h"

namespace pullagent::testing {
namespace {

using nlohmann::json;

// A Notation directory: the stack's trust store (ca:acme trusts the Acme root, ca:mallory the
// other one) and a trust policy with one statement for `scope`.
std::filesystem::path writeNotationDir(
    const std::filesystem::path& directory, const std::filesystem::path& truststore,
    const std::string& scope, const std::string& level,
    const json& identities = {"x509.subject: C=US, ST=WA, O=Acme"}, const json& overrides = nullptr,
    const json& stores = {"ca:acme"}) {
  std::filesystem::remove_all(directory);
  std::filesystem::create_directories(directory);
  std::filesystem::copy(truststore, directory / "truststore",
                        std::filesystem::copy_options::recursive);
  json verification = {{"level", level}};
  if (!overrides.is_null())
    verification["override"] = overrides;
  json statement = {
      {"name", "proxied"}, {"registryScopes", {scope}}, {"signatureVerification", verification}};
  if (level != "skip") {
    statement["trustStores"] = stores;
    statement["trustedIdentities"] = identities;
  }
  writeFile(directory / "trustpolicy.json",
            json{{"version", "1.0"}, {"trustPolicies", {statement}}}.dump(2));
  return directory;
}

class Notation : public PullTest {
 protected:
  const json& image(const std::string& tag) {
    return stack().info()["notary"]["images"]["test/notary:" + tag];
  }
  std::string proxy() { return stack().proxy("proxy_anon"); }
  std::string truststore() { return stack().info()["notary"]["truststore"]; }
  std::string proxied(const std::string& tag) { return proxy() + "/test/notary:" + tag; }
  // A Notation directory whose one statement covers the proxied repository.
  std::string notationDir(const std::string& level, const json& overrides = nullptr,
                          const std::string& scope = "", const json& stores = {"ca:acme"}) {
    const auto directory = dest_.path().parent_path() / ("notation-" + std::to_string(++dirs_));
    written_.push_back(directory);
    return writeNotationDir(directory, truststore(),
                            scope.empty() ? proxy() + "/test/notary" : scope, level,
                            {"x509.subject: C=US, ST=WA, O=Acme"}, overrides, stores)
        .string();
  }
  void TearDown() override {
    for (const auto& path : written_)
      std::filesystem::remove_all(path);
  }
  // The layer blobs and config of `tag` the proxy was asked for (GET or HEAD).
  size_t layerRequests(const std::string& tag) {
    size_t count = 0;
    const json& info = image(tag);
    const json& layers = info.contains("amd64") ? info["amd64"]["layers"] : info["layers"];
    for (const auto& layer : layers)
      count += requests(proxy(), layer["digest"].get<std::string>()).size();
    if (info.contains("config"))
      count += requests(proxy(), info["config"].get<std::string>()).size();
    return count;
  }
  ProcessResult pullWith(const std::string& tag, const std::string& directory) {
    return pull(proxied(tag), {"--notation-dir", directory});
  }

  int dirs_ = 0;
  std::vector<std::filesystem::path> written_;
};

TEST_F(Notation, SignedImagesArePulledWhateverTheKeyAndWhicheverManifestIsSigned) {
  const auto strict = notationDir("strict");
  for (const std::string tag : {"ecdsa", "rsa", "rsa3072", "cose-ecdsa", "cose-rsa", "twosigs",
                                "index-signed", "platform-signed"}) {
    stack().reset(proxy());
    auto result = pullWith(tag, strict);
    EXPECT_EQ(result.exit_code, 0) << tag << "\n" << result.all();
    EXPECT_NE(result.err.find("accepted: Notary signature"), std::string::npos) << result.all();
    EXPECT_GT(layerRequests(tag), 0u) << tag;
  }
  // The cost of a signed pull of one manifest, stated in docs/signatures.md: the referrers API
  // (404 here), the tag schema's index, the signature's manifest and its envelope.
  stack().reset(proxy());
  ASSERT_EQ(pullWith("ecdsa", strict).exit_code, 0);
  const std::string hex = image("ecdsa")["digest"].get<std::string>().substr(7);
  EXPECT_EQ(requests(proxy(), "/referrers/sha256:" + hex).size(), 1u);
  EXPECT_EQ(requests(proxy(), "/manifests/sha256-" + hex).size(), 1u);
}

TEST_F(Notation, EachFailedCheckIsNamedAndNoLayerIsAskedFor) {
  struct Case {
    std::string tag;
    std::string says;
  };
  const std::vector<Case> cases = {
      {"unsigned",
       "no Notary signature of the manifest " + image("unsigned")["digest"].get<std::string>()},
      {"wrongdigest", "integrity: it signs " + image("ecdsa")["digest"].get<std::string>()},
      {"wrongsize", "integrity: it signs " + image("wrongsize")["digest"].get<std::string>()},
      {"unknowncrit", "\"io.example.unknownCritical\" is unknown to this verifier"},
      {"tampered", "integrity: the signature does not verify"},
      {"sha1", "is signed with SHA1"},
      {"serverauth", "its extendedKeyUsage allows more than code signing"},
      {"untrusted", "authenticity: the chain of \"CN=acme-untrusted"},
      {"mallory-org", "is none of the trusted identities"},
      {"expired", "authenticTimestamp: the certificate \"CN=acme-expired"},
      {"sigexpired", "expiry: the signature expired at 2021-01-01 00:00:00 UTC"},
      {"revocable", "revocation: the certificate \"CN=acme-revocable"},
      {"cose-unknowncrit",
       "COSE envelope: protected header: crit[1]: the critical attribute "
       "\"io.example.unknownCritical\" is unknown to this verifier"},
      {"cose-tampered", "integrity: the signature does not verify"},
      {"bigenvelope", "a layer of 5242882 bytes (at most 256 KiB)"},
  };
  const auto strict = notationDir("strict");
  for (const auto& c : cases) {
    stack().reset(proxy());
    auto result = pullWith(c.tag, strict);
    EXPECT_NE(result.exit_code, 0) << c.tag;
    EXPECT_NE(result.err.find("refused by the signature policy notation trust policy " + strict +
                              "/trustpolicy.json: trustPolicies[0] (proxied) (level strict)"),
              std::string::npos)
        << c.tag << "\n"
        << result.all();
    EXPECT_NE(result.err.find(c.says), std::string::npos) << c.tag << "\n" << result.all();
    EXPECT_EQ(layerRequests(c.tag), 0u) << c.tag;
  }
}

TEST_F(Notation, LevelsDecideWhatIsOnlyLogged) {
  // permissive: an expired certificate, an expired signature and an unchecked revocation are
  // logged; authenticity still refuses.
  const auto permissive = notationDir("permissive");
  for (const std::string tag : {"expired", "sigexpired", "revocable"}) {
    auto result = pullWith(tag, permissive);
    EXPECT_EQ(result.exit_code, 0) << tag << "\n" << result.all();
    EXPECT_NE(result.err.find("accepted under level permissive"), std::string::npos)
        << result.all();
  }
  EXPECT_NE(pullWith("untrusted", permissive).exit_code, 0);
  // audit: an unsigned image and an untrusted signer are published with a warning; a signature
  // that fails integrity still refuses.
  const auto audit = notationDir("audit");
  auto unsigned_pull = pullWith("unsigned", audit);
  EXPECT_EQ(unsigned_pull.exit_code, 0) << unsigned_pull.all();
  EXPECT_NE(unsigned_pull.err.find("no Notary signature"), std::string::npos);
  EXPECT_EQ(pullWith("untrusted", audit).exit_code, 0);
  EXPECT_NE(pullWith("tampered", audit).exit_code, 0);
  // strict with revocation skipped.
  EXPECT_EQ(pullWith("revocable", notationDir("strict", {{"revocation", "skip"}})).exit_code, 0);
  // skip: no signature is even looked for.
  stack().reset(proxy());
  auto skipped = pullWith("unsigned", notationDir("skip"));
  EXPECT_EQ(skipped.exit_code, 0) << skipped.all();
  EXPECT_TRUE(requests(proxy(), "/referrers/").empty());
  EXPECT_TRUE(requests(proxy(), "/manifests/sha256-").empty());
}

TEST_F(Notation, ATimestampKeepsTheSignatureOfAnExpiredCertificateGood) {
  // The "expiring" signer's certificate was valid for a few seconds after the stack started;
  // the RFC 3161 authority (`openssl ts`) countersigned one of its signatures meanwhile.
  const auto expired_at = std::chrono::system_clock::from_time_t(
      stack().info()["notary"]["expiring_not_after"].get<std::time_t>());
  std::this_thread::sleep_until(expired_at + std::chrono::seconds(1));
  const auto with_tsa = notationDir("strict", nullptr, "", {"ca:acme", "tsa:acme"});
  auto timestamped = pullWith("timestamped", with_tsa);
  EXPECT_EQ(timestamped.exit_code, 0) << timestamped.all();
  auto untimestamped = pullWith("expiring", with_tsa);
  EXPECT_NE(untimestamped.exit_code, 0);
  EXPECT_NE(untimestamped.err.find("authenticTimestamp: the statement verifies timestamps"),
            std::string::npos)
      << untimestamped.all();
  // Without a tsa store the timestamp counts for nothing: the certificate has expired.
  auto without_tsa = pullWith("timestamped", notationDir("strict"));
  EXPECT_NE(without_tsa.exit_code, 0);
  EXPECT_NE(without_tsa.err.find("authenticTimestamp: the certificate \"CN=acme-expiring"),
            std::string::npos)
      << without_tsa.all();
  EXPECT_EQ(layerRequests("expiring"), 0u);
}

TEST_F(Notation, RevocationIsAskedOfTheOcspResponderOrCrlATrustedChainNames) {
  const std::string revocation = stack().info()["notary"]["revocation"];
  stack().reset(revocation);
  const auto strict = notationDir("strict");
  for (const std::string tag : {"ocsp-good", "crl-good"}) {
    auto result = pullWith(tag, strict);
    EXPECT_EQ(result.exit_code, 0) << tag << "\n" << result.all();
  }
  EXPECT_EQ(requests(revocation, "/ocsp").size(), 1u);
  EXPECT_EQ(requests(revocation, "/crl").size(), 1u);
  struct Case {
    std::string tag;
    std::string says;
  };
  for (const auto& c : std::vector<Case>{
           {"ocsp-revoked", "\" is revoked (OCSP " + revocation + "/ocsp)"},
           {"crl-revoked", "\" is revoked (CRL " + revocation + "/crl)"},
           {"revocable", "revocation status unknown (OCSP http://127.0.0.1:9/ocsp: "}}) {
    auto result = pullWith(c.tag, strict);
    EXPECT_NE(result.exit_code, 0) << c.tag;
    EXPECT_NE(result.err.find("revocation: the certificate \"CN=acme-" + c.tag), std::string::npos)
        << c.tag << "\n"
        << result.all();
    EXPECT_NE(result.err.find(c.says), std::string::npos) << c.tag << "\n" << result.all();
    EXPECT_EQ(layerRequests(c.tag), 0u);
  }
  // permissive logs it; strict with revocation skipped never asks.
  auto logged = pullWith("ocsp-revoked", notationDir("permissive"));
  EXPECT_EQ(logged.exit_code, 0) << logged.all();
  EXPECT_NE(logged.err.find("is revoked"), std::string::npos) << logged.all();
  stack().reset(revocation);
  EXPECT_EQ(pullWith("crl-revoked", notationDir("strict", {{"revocation", "skip"}})).exit_code, 0);
  EXPECT_TRUE(requests(revocation, "/").empty());
}

// notation-go's verifyTimestamp: the timestamping authority's own chain is asked about, and a
// timestamp by a revoked authority does not count, whether or not the signing certificate
// expired. An authority that names no revocation service is asked nothing.
TEST_F(Notation, ATimestampByARevokedAuthorityDoesNotCount) {
  const std::string revocation = stack().info()["notary"]["revocation"];
  const auto with_tsa = notationDir("strict", nullptr, "", {"ca:acme", "tsa:acme"});
  stack().reset(revocation);
  auto refused = pullWith("timestamped-by-revoked-tsa", with_tsa);
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.err.find("authenticTimestamp: the timestamp's authority: the certificate "
                             "\"CN=Acme TSA (revoked),O=Acme,L=Seattle,ST=WA,C=US\" is revoked "
                             "(OCSP " +
                             revocation + "/ocsp)"),
            std::string::npos)
      << refused.all();
  EXPECT_EQ(layerRequests("timestamped-by-revoked-tsa"), 0u);
  EXPECT_EQ(requests(revocation, "/ocsp").size(), 1u);
  // permissive only logs the timestamp check.
  auto logged = pullWith("timestamped-by-revoked-tsa",
                         notationDir("permissive", nullptr, "", {"ca:acme", "tsa:acme"}));
  EXPECT_EQ(logged.exit_code, 0) << logged.all();
  EXPECT_NE(logged.err.find("is revoked"), std::string::npos) << logged.all();
  // The authority of the other timestamps names no responder.
  stack().reset(revocation);
  auto timestamped = pullWith("timestamped", with_tsa);
  EXPECT_EQ(timestamped.exit_code, 0) << timestamped.all();
  EXPECT_TRUE(requests(revocation, "/").empty());
}

TEST_F(Notation, VerifyTakesTheVerdictWithoutPullingTheImage) {
  const auto strict = notationDir("strict");
  auto verify = [&](const std::string& tag, const std::string& directory) {
    return runProcess({PULLAGENT_BINARY, "verify", proxied(tag), "--ca", stack().ca(),
                       "--notation-dir", directory, "--json"});
  };
  stack().reset(proxy());
  auto accepted = verify("ecdsa", strict);
  ASSERT_EQ(accepted.exit_code, 0) << accepted.all();
  auto report = json::parse(accepted.out);
  EXPECT_EQ(report["result"], "accepted");
  EXPECT_EQ(report["manifest"], image("ecdsa")["digest"]);
  EXPECT_EQ(report["scope"], "proxied");
  EXPECT_NE(report["summary"].get<std::string>().find("Notary signature"), std::string::npos);
  EXPECT_EQ(layerRequests("ecdsa"), 0u);  // no layer, no config
  auto refused = verify("untrusted", strict);
  EXPECT_EQ(refused.exit_code, 6) << refused.all();
  report = json::parse(refused.out);
  EXPECT_EQ(report["result"], "refused");
  EXPECT_EQ(report["check"], "authenticity");
  EXPECT_NE(report["error"].get<std::string>().find("authenticity: the chain of"),
            std::string::npos);
  auto audited = verify("unsigned", notationDir("audit"));
  ASSERT_EQ(audited.exit_code, 0) << audited.all();
  EXPECT_EQ(json::parse(audited.out)["logged"], json::array({"unsigned"}));
  // Without a policy there is nothing to verify against.
  auto usage = runProcess({PULLAGENT_BINARY, "verify", proxied("ecdsa")});
  EXPECT_EQ(usage.exit_code, 2) << usage.all();
}

TEST_F(Notation, AnImageNoStatementCoversIsRefusedBeforeAnyRequestForSignatures) {
  stack().reset(proxy());
  auto result = pullWith("ecdsa", notationDir("strict", nullptr, "example.com/other"));
  EXPECT_NE(result.exit_code, 0);
  EXPECT_NE(result.err.find("no statement's registryScopes covers " + proxy() + "/test/notary"),
            std::string::npos)
      << result.all();
  EXPECT_TRUE(requests(proxy(), "/referrers/").empty());
  EXPECT_EQ(layerRequests("ecdsa"), 0u);
}

TEST_F(Notation, WithAContainersPolicyTooBothMustAccept) {
  json reject = {{"default", json::array({{{"type", "reject"}}})}};
  const auto policy = dest_.path().parent_path() / "notation-reject.json";
  writeFile(policy, reject.dump());
  written_.push_back(policy);
  auto result = pull(proxied("ecdsa"), {"--notation-dir", notationDir("strict"),
                                        "--signature-policy", policy.string()});
  EXPECT_NE(result.exit_code, 0);
  EXPECT_NE(result.err.find("rejects every image"), std::string::npos) << result.all();
}

// containerd's image verifiers (bindir): a verifier written for containerd, here a shell script
// that allows one digest, decides before the first layer.
class ImageVerifiers : public Notation {};

TEST_F(ImageVerifiers, AVerifierWrittenForContainerdAllowsOrBlocksBeforeTheFirstLayer) {
  const auto bin = dest_.path().parent_path() / "verifiers";
  std::filesystem::create_directories(bin);
  written_.push_back(bin);
  std::filesystem::permissions(
      bin, std::filesystem::perms::owner_all | std::filesystem::perms::group_read |
               std::filesystem::perms::group_exec | std::filesystem::perms::others_read |
               std::filesystem::perms::others_exec);
  const std::string allowed = image("ecdsa")["digest"];
  writeFile(bin / "allowlist",
            "#!/bin/sh\n"
            "while [ $# -gt 0 ]; do\n"
            "  case \"$1\" in -digest) digest=\"$2\"; shift 2;; *) shift;; esac\n"
            "done\n"
            "cat > /dev/null\n"
            "if [ \"$digest\" = \"" +
                allowed +
                "\" ]; then echo \"on the list\"; exit 0; fi\n"
                "echo \"not on the list: $digest\"; exit 1\n");
  std::filesystem::permissions(bin / "allowlist", std::filesystem::perms::owner_all |
                                                      std::filesystem::perms::group_read |
                                                      std::filesystem::perms::group_exec |
                                                      std::filesystem::perms::others_read |
                                                      std::filesystem::perms::others_exec);
  stack().reset(proxy());
  auto ok = pull(proxied("ecdsa"), {"--verifier-dir", bin.string()});
  EXPECT_EQ(ok.exit_code, 0) << ok.all();
  EXPECT_NE(ok.err.find("allowed by the image verifiers in " + bin.string() +
                        ": allowlist => on the list"),
            std::string::npos)
      << ok.all();
  auto blocked = pull(proxied("rsa"), {"--verifier-dir", bin.string()});
  EXPECT_NE(blocked.exit_code, 0);
  EXPECT_NE(blocked.err.find(
                "verifier allowlist rejected " + proxied("rsa") +
                " (exit code 1): not on the list: " + image("rsa")["digest"].get<std::string>()),
            std::string::npos)
      << blocked.all();
  EXPECT_EQ(layerRequests("rsa"), 0u);
}

// The service keeps what an OCSP responder answered while it is current: a second image by the
// same signing certificate costs no revocation request.
class NotationRevocation : public DaemonFixture {};

TEST_F(NotationRevocation, AnAnswerStillCurrentIsNotAskedAgain) {
  const json& images = stack().info()["notary"]["images"];
  const std::string proxy = stack().proxy("proxy_anon");
  const std::string revocation = stack().info()["notary"]["revocation"];
  const auto directory = dest_.path() / "notation";
  writeNotationDir(directory, stack().info()["notary"]["truststore"], proxy + "/test/notary",
                   "strict");
  json agent = agentConfig();
  agent["notationDir"] = directory.string();
  stack().reset(revocation);
  start(agent);
  auto anonymous = [](const std::string& image) {
    return json{{"properties", {{"siteConfig", {{"linuxFxVersion", "DOCKER|" + image}}}}}};
  };
  putSite("a", anonymous(proxy + "/test/notary:ocsp-good"));
  ASSERT_TRUE(waitForPublished("a", images["test/notary:ocsp-good"]["digest"])) << log();
  EXPECT_EQ(requests(revocation, "/ocsp").size(), 1u);
  putSite("b", anonymous(proxy + "/test/notary:ocsp-good-2"));
  ASSERT_TRUE(waitForPublished("b", images["test/notary:ocsp-good-2"]["digest"])) << log();
  EXPECT_EQ(requests(revocation, "/ocsp").size(), 1u);
}

// The service under the agent config's notationDir: a site whose image another site published
// (every blob local) is refused once its statement is stricter, and a reload re-decides.
class NotationSites : public DaemonFixture {};

TEST_F(NotationSites, APublishedUnsignedImageIsRefusedWhenTheTrustPolicyTightens) {
  const json& images = stack().info()["notary"]["images"];
  const std::string proxy = stack().proxy("proxy_anon");
  const auto directory = dest_.path() / "notation";
  const std::string truststore = stack().info()["notary"]["truststore"];
  writeNotationDir(directory, truststore, proxy + "/test/notary", "audit");
  json agent = agentConfig();
  agent["notationDir"] = directory.string();
  start(agent);
  auto anonymous = [](const std::string& image) {
    return json{{"properties", {{"siteConfig", {{"linuxFxVersion", "DOCKER|" + image}}}}}};
  };
  putSite("web", anonymous(proxy + "/test/notary:unsigned"));
  ASSERT_TRUE(waitForPublished("web", images["test/notary:unsigned"]["digest"]))
      << siteState("web") << log();
  EXPECT_NE(metrics().find("pullagent_signature_verifications_total{check=\"unsigned\",result="
                           "\"logged\"} 1\n"),
            std::string::npos)
      << metrics();
  // The verdict it was published under, in the state and in `pullagent status`.
  EXPECT_NE(siteState("web")["published"]["signature"].get<std::string>().find(
                "unsigned, published under Notation level audit"),
            std::string::npos)
      << siteState("web");
  auto status = runProcess({PULLAGENT_BINARY, "status", "web", "--state", stateDir().string()});
  EXPECT_NE(status.out.find("  signature: unsigned, published under Notation level audit"),
            std::string::npos)
      << status.out;
  // strict now: the published image is checked again and refused; it stays published.
  writeNotationDir(directory, truststore, proxy + "/test/notary", "strict");
  const size_t mark = notify_->mark();
  daemon_->kill(SIGHUP);
  ASSERT_TRUE(notify_->waitForLine("READY=1", seconds(5), mark)) << notify_->all();
  ASSERT_TRUE(waitForSite("web",
                          [](const json& state) {
                            return state.is_object() && state["lastError"].is_object() &&
                                   state["lastError"]["phase"] == "signature";
                          }))
      << siteState("web") << log();
  const std::string message = siteState("web")["lastError"]["message"];
  EXPECT_NE(message.find("no Notary signature"), std::string::npos) << message;
  EXPECT_NE(message.find("(level strict)"), std::string::npos) << message;
  EXPECT_EQ(siteState("web")["published"]["digest"], images["test/notary:unsigned"]["digest"]);
  EXPECT_NE(metrics().find("pullagent_signature_verifications_total{check=\"unsigned\",result="
                           "\"refused\"}"),
            std::string::npos)
      << metrics();
}

}  // namespace
}  // namespace pullagent::testing
