// Signature policies against Debian's docker-registry: cosign signatures made by the stack with
// python3-cryptography (tests/support/cosign.py) under the tag sha256-<hex>.sig, a
// containers-policy.json as podman and CRI-O read it, and `pullagent pull --signature-policy`.
// Every refused image is refused before any of its layers is asked for (the recording proxy in
// front of the registry says so), and the refusal names the check that failed.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include <string>
#include <vector>

#include "tests/integration/daemon_fixture.h"
#include "tests/integration/pull_fixture.h"

namespace pullagent::testing {
namespace {

using nlohmann::json;

class Signatures : public PullTest {
 protected:
  const json& signedInfo() { return stack().info()["signed"]; }
  std::string key(const std::string& name) { return signedInfo()["keys"][name]; }
  const json& image(const std::string& tag) { return signedInfo()["images"]["test/signed:" + tag]; }

  // Through the recording proxy in front of the anonymous registry; the signatures name the
  // registry itself, so the policy maps the proxy's names onto it (remapIdentity, as for a
  // mirror).
  std::string proxied(const std::string& tag) {
    return stack().proxy("proxy_anon") + "/test/signed:" + tag;
  }
  json remap() {
    return {{"type", "remapIdentity"},
            {"prefix", stack().proxy("proxy_anon")},
            {"signedPrefix", stack().registry("anon")}};
  }
  // Everything from the proxy must carry a signature by one of `keys`; anything else is
  // rejected.
  std::string policyFile(const std::vector<std::string>& keys, json identity) {
    json key_paths = json::array();
    for (const auto& name : keys)
      key_paths.push_back(key(name));
    json requirement = {{"type", "sigstoreSigned"}, {"keyPaths", key_paths}};
    if (!identity.is_null())
      requirement["signedIdentity"] = identity;
    json policy = {
        {"default", json::array({{{"type", "reject"}}})},
        {"transports", {{"docker", {{stack().proxy("proxy_anon"), json::array({requirement})}}}}}};
    const auto path =
        dest_.path().parent_path() / ("policy-" + std::to_string(++policies_) + ".json");
    writeFile(path, policy.dump(2));
    written_.push_back(path);
    return path.string();
  }
  void TearDown() override {
    for (const auto& path : written_)
      std::filesystem::remove(path);
  }
  // The layer blobs of `tag` the proxy was asked for (GET or HEAD).
  size_t layerRequests(const std::string& tag) {
    size_t count = 0;
    const json& info = image(tag);
    const json& layers = info.contains("amd64") ? info["amd64"]["layers"] : info["layers"];
    for (const auto& layer : layers)
      count += requests(stack().proxy("proxy_anon"), layer["digest"].get<std::string>()).size();
    return count;
  }
  ProcessResult pullWith(const std::string& tag, const std::string& policy) {
    return pull(proxied(tag), {"--signature-policy", policy});
  }

  int policies_ = 0;
  std::vector<std::filesystem::path> written_;
};

TEST_F(Signatures, ImagesSignedByATrustedKeyArePulledWhateverTheKeyKind) {
  const auto policy = policyFile({"trusted", "rsa", "ed25519"}, remap());
  for (const std::string tag : {"ecdsa", "rsa", "ed25519", "twosigs"}) {
    auto result = pullWith(tag, policy);
    EXPECT_EQ(result.exit_code, 0) << tag << "\n" << result.all();
    EXPECT_NE(result.err.find("accepted by the signature policy"), std::string::npos)
        << result.all();
    EXPECT_GT(layerRequests(tag), 0u) << tag;
  }
  // The cost of a signed pull: the .sig manifest and one payload blob per signature.
  auto sig = requests(stack().proxy("proxy_anon"),
                      "/manifests/sha256-" + image("ecdsa")["digest"].get<std::string>().substr(7));
  EXPECT_EQ(sig.size(), 1u);
}

TEST_F(Signatures, EachFailedCheckIsNamedAndNoLayerIsAskedFor) {
  struct Case {
    std::string tag;
    std::string says;
  };
  const std::vector<Case> cases = {
      {"unsigned",
       "no cosign signature of the manifest " + image("unsigned")["digest"].get<std::string>()},
      {"untrusted", "integrity/authenticity: it verifies with none of the 1 trusted key(s)"},
      {"wrongdigest", "digest: it signs " + image("ecdsa")["digest"].get<std::string>()},
      {"tampered", "integrity/authenticity"},
      {"elsewhere",
       "identity: the signature is for \"" + stack().registry("anon") + "/test/other:elsewhere\""},
      {"bare", "identity: the signature is for \"" + stack().registry("anon") + "/test/signed\""},
      {"bundle-untrusted", "Sigstore bundle sha256:"},
      {"bundle-wrongdigest",
       "digest: its statement names " + image("ecdsa")["digest"].get<std::string>()},
      {"bundle-attestation", "is an attestation, not an image signature"},
  };
  const auto policy = policyFile({"trusted"}, remap());
  for (const auto& c : cases) {
    auto result = pullWith(c.tag, policy);
    EXPECT_NE(result.exit_code, 0) << c.tag;
    EXPECT_NE(result.err.find("refused by the signature policy containers policy " + policy +
                              " (scope " + stack().proxy("proxy_anon") + ")"),
              std::string::npos)
        << c.tag << "\n"
        << result.all();
    EXPECT_NE(result.err.find(c.says), std::string::npos) << c.tag << "\n" << result.all();
    EXPECT_NE(result.err.find("Sign " + proxied(c.tag) + " with a key the policy trusts"),
              std::string::npos)
        << result.all();
    EXPECT_EQ(layerRequests(c.tag), 0u) << c.tag;
    EXPECT_EQ(
        requests(stack().proxy("proxy_anon"), image(c.tag)["config"].get<std::string>()).size(), 0u)
        << c.tag;
  }
}

TEST_F(Signatures, ABareRepositoryIsEnoughUnderMatchRepositoryNotUnderTheDefault) {
  // cosign writes the repository without a tag; containers/image's default rule never admits a
  // bare name, by tag or by digest.
  const auto by_default = policyFile({"trusted"}, remap());
  EXPECT_NE(pullWith("bare", by_default).exit_code, 0);
  const std::string pinned =
      stack().proxy("proxy_anon") + "/test/signed@" + image("bare")["digest"].get<std::string>();
  EXPECT_NE(pull(pinned, {"--signature-policy", by_default}).exit_code, 0);
  // matchRepository admits it, and only for its own repository: the proxy's name is not the
  // signed one, so this policy scopes the registry itself.
  json policy = {{"default", json::array({{{"type", "reject"}}})},
                 {"transports",
                  {{"docker",
                    {{stack().registry("anon"),
                      json::array({{{"type", "sigstoreSigned"},
                                    {"keyPath", key("trusted")},
                                    {"signedIdentity", {{"type", "matchRepository"}}}}})}}}}}};
  const auto path = dest_.path().parent_path() / "policy-repository.json";
  writeFile(path, policy.dump());
  written_.push_back(path);
  auto accepted =
      pull(stack().registry("anon") + "/test/signed:bare", {"--signature-policy", path.string()});
  EXPECT_EQ(accepted.exit_code, 0) << accepted.all();
  auto elsewhere = pull(stack().registry("anon") + "/test/signed:elsewhere",
                        {"--signature-policy", path.string()});
  EXPECT_NE(elsewhere.exit_code, 0) << elsewhere.all();
}

// cosign v3 attaches a Sigstore bundle as a referrer (here through the tag schema's index): a
// DSSE statement naming the digest and nothing else. It is looked for only when no legacy
// signature satisfies; it stands only for an image pulled by digest (pulled by tag, the registry
// would choose which signed digest to serve), and never under a rule that pins a reference.
TEST_F(Signatures, ACosignV3BundleSignsTheDigestAndStandsForAnImagePulledByIt) {
  const std::string digest = image("bundle-ecdsa")["digest"];
  const std::string hex = digest.substr(7);
  const std::string pinned = stack().proxy("proxy_anon") + "/test/signed@" + digest;
  const auto policy = policyFile({"trusted"}, remap());
  auto accepted = pull(pinned, {"--signature-policy", policy});
  EXPECT_EQ(accepted.exit_code, 0) << accepted.all();
  EXPECT_NE(accepted.err.find("cosign Sigstore bundle sha256:"), std::string::npos)
      << accepted.all();
  EXPECT_GT(layerRequests("bundle-ecdsa"), 0u);
  // Its cost: the legacy tag (404), the referrers API (404) and the tag schema's index, then
  // the bundle's manifest and blob.
  EXPECT_EQ(requests(stack().proxy("proxy_anon"), "/manifests/sha256-" + hex + ".sig").size(), 1u);
  EXPECT_EQ(requests(stack().proxy("proxy_anon"), "/referrers/sha256:" + hex).size(), 1u);

  stack().reset(stack().proxy("proxy_anon"));
  auto by_tag = pullWith("bundle-ecdsa", policy);
  EXPECT_NE(by_tag.exit_code, 0);
  EXPECT_NE(by_tag.err.find("identity: the signature names no repository (a Sigstore bundle "
                            "signs the digest only), so it stands only for an image pulled by "
                            "digest"),
            std::string::npos)
      << by_tag.all();
  auto exact = pull(
      pinned, {"--signature-policy",
               policyFile({"trusted"}, {{"type", "exactReference"}, {"dockerReference", pinned}})});
  EXPECT_NE(exact.exit_code, 0);
  EXPECT_NE(exact.err.find("the policy's signedIdentity exactReference wants one"),
            std::string::npos)
      << exact.all();
  EXPECT_EQ(layerRequests("bundle-ecdsa"), 0u);
  // A legacy-signed image costs what it did: its referrers are not asked.
  stack().reset(stack().proxy("proxy_anon"));
  ASSERT_EQ(pullWith("ecdsa", policy).exit_code, 0);
  EXPECT_TRUE(requests(stack().proxy("proxy_anon"), "/referrers/").empty());
}

TEST_F(Signatures, AMultiPlatformImageMaySignItsIndexOrItsPlatformManifest) {
  const auto policy = policyFile({"trusted"}, remap());
  for (const std::string tag : {"index-signed", "platform-signed"}) {
    auto result = pullWith(tag, policy);
    EXPECT_EQ(result.exit_code, 0) << tag << "\n" << result.all();
    EXPECT_GT(layerRequests(tag), 0u) << tag;
  }
}

TEST_F(Signatures, RejectAndUnsupportedRequirementsRefuseWithoutARequestForSignatures) {
  json policy = {
      {"default", json::array({{{"type", "reject"}}})},
      {"transports",
       {{"docker",
         {{stack().proxy("proxy_anon") + "/test/signed:ecdsa",
           json::array(
               {{{"type", "signedBy"}, {"keyType", "GPGKeys"}, {"keyPath", "/k.gpg"}}})}}}}}};
  const auto path = dest_.path().parent_path() / "policy-reject.json";
  writeFile(path, policy.dump());
  written_.push_back(path);
  auto unsupported = pullWith("ecdsa", path.string());
  EXPECT_NE(unsupported.exit_code, 0);
  EXPECT_NE(unsupported.err.find("signedBy (GPG simple signing) is not supported"),
            std::string::npos)
      << unsupported.all();
  auto rejected = pullWith("rsa", path.string());
  EXPECT_NE(rejected.exit_code, 0);
  EXPECT_NE(rejected.err.find("(scope default)"), std::string::npos) << rejected.all();
  EXPECT_NE(rejected.err.find("default[0] rejects every image"), std::string::npos)
      << rejected.all();
  EXPECT_EQ(requests(stack().proxy("proxy_anon"), "/manifests/sha256-").size(), 0u);
  EXPECT_EQ(layerRequests("ecdsa") + layerRequests("rsa"), 0u);
}

TEST_F(Signatures, AStricterPolicyRefusesAnImageWhoseBlobsAreAllOnTheHost) {
  // The unsigned image published into a state dir under a policy that accepts anything...
  const auto state = dest_.path() / "state";
  json lenient = {{"default", json::array({{{"type", "insecureAcceptAnything"}}})}};
  const auto lenient_path = dest_.path().parent_path() / "policy-lenient.json";
  writeFile(lenient_path, lenient.dump());
  written_.push_back(lenient_path);
  auto first = runProcess({PULLAGENT_BINARY, "pull", proxied("unsigned"), "--state", state.string(),
                           "--ca", stack().ca(), "--signature-policy", lenient_path.string()});
  ASSERT_EQ(first.exit_code, 0) << first.all();
  // ...is refused to a pull under a policy that wants a signature, though every blob is local.
  stack().reset(stack().proxy("proxy_anon"));
  auto second =
      runProcess({PULLAGENT_BINARY, "pull", proxied("unsigned"), "--state", state.string(), "--ca",
                  stack().ca(), "--signature-policy", policyFile({"trusted"}, remap())});
  EXPECT_NE(second.exit_code, 0) << second.all();
  EXPECT_NE(second.err.find("no cosign signature"), std::string::npos) << second.all();
}

// The service checks every site's image under the agent config's signaturePolicy: a signed
// image is published, an unsigned one fails in the phase "signature" with the refusal, before
// any of its layers is asked for, and the site keeps retrying on the usual backoff.
class SignedSites : public DaemonFixture {
 protected:
  // The agent config with a signaturePolicy (policy.json in the test's directory) that rejects
  // everything but images under `proxy` signed by the trusted key, as the anonymous registry.
  json signedAgentConfig(const std::string& proxy) {
    json requirement = {{"type", "sigstoreSigned"},
                        {"keyPath", stack().info()["signed"]["keys"]["trusted"]},
                        {"signedIdentity",
                         {{"type", "remapIdentity"},
                          {"prefix", proxy},
                          {"signedPrefix", stack().registry("anon")}}}};
    json policy = {{"default", json::array({{{"type", "reject"}}})},
                   {"transports", {{"docker", {{proxy, json::array({requirement})}}}}}};
    writeFile(dest_.path() / "policy.json", policy.dump());
    json agent = agentConfig();
    agent["signaturePolicy"] = (dest_.path() / "policy.json").string();
    return agent;
  }
};

TEST_F(SignedSites, TheServicePublishesSignedImagesAndRefusesTheOthersInTheirOwnPhase) {
  const json& images = stack().info()["signed"]["images"];
  const std::string proxy = stack().proxy("proxy_anon");
  json agent = signedAgentConfig(proxy);
  start(agent);
  auto anonymous = [](const std::string& image) {
    return json{{"properties", {{"siteConfig", {{"linuxFxVersion", "DOCKER|" + image}}}}}};
  };
  putSite("signed", anonymous(proxy + "/test/signed:ecdsa"));
  putSite("unsigned", anonymous(proxy + "/test/signed:unsigned"));
  ASSERT_TRUE(waitForPublished("signed", images["test/signed:ecdsa"]["digest"]))
      << siteState("signed") << log();
  ASSERT_TRUE(waitForSite("unsigned",
                          [](const json& state) {
                            return state.is_object() && state["phase"] == "failed" &&
                                   state["lastError"].is_object() &&
                                   state["lastError"]["phase"] == "signature";
                          }))
      << siteState("unsigned") << log();
  const std::string message = siteState("unsigned")["lastError"]["message"];
  EXPECT_NE(message.find("no cosign signature"), std::string::npos) << message;
  EXPECT_NE(message.find("(scope " + proxy + ")"), std::string::npos) << message;
  for (const auto& layer : images["test/signed:unsigned"]["layers"])
    EXPECT_TRUE(requests(proxy, layer["digest"].get<std::string>()).empty());
  auto status = runProcess({PULLAGENT_BINARY, "status", "--state", stateDir().string()});
  EXPECT_NE(status.out.find("signature"), std::string::npos) << status.out;

  // A refresh that finds the tag where it was, under the same policy, takes no new verdict: no
  // signature request.
  stack().reset(proxy);
  auto refresh = runProcess({PULLAGENT_BINARY, "refresh", "signed", "--socket",
                             (dest_.path() / "control.sock").string()});
  EXPECT_EQ(refresh.exit_code, 0) << refresh.all() << log();
  // (The unsigned site's retries go on beside it: only the signed image's .sig tag counts.)
  const std::string signed_digest = images["test/signed:ecdsa"]["digest"];
  EXPECT_TRUE(requests(proxy, "/manifests/sha256-" + signed_digest.substr(7)).empty());
  EXPECT_FALSE(requests(proxy, "/manifests/ecdsa").empty());  // the tag was checked

  // A stricter policy, and a reload: the published site is checked again and refused in the
  // phase "signature"; its published image stays.
  writeFile(dest_.path() / "policy.json",
            json{{"default", json::array({{{"type", "reject"}}})}}.dump());
  const size_t mark = notify_->mark();
  daemon_->kill(SIGHUP);
  ASSERT_TRUE(notify_->waitForLine("READY=1", seconds(5), mark)) << notify_->all();
  ASSERT_TRUE(waitForSite("signed",
                          [](const json& state) {
                            return state.is_object() && state["lastError"].is_object() &&
                                   state["lastError"]["phase"] == "signature";
                          }))
      << siteState("signed") << log();
  EXPECT_NE(
      siteState("signed")["lastError"]["message"].get<std::string>().find("rejects every image"),
      std::string::npos);
  EXPECT_EQ(siteState("signed")["published"]["digest"], images["test/signed:ecdsa"]["digest"]);
  EXPECT_NE(log().find("every published site's image is checked against it"), std::string::npos);
}

// A rollback under a signature policy is a publish like any other: the previous image is decided
// again by the policy of now. One that scope now rejects is refused and the site stays; allowed
// again, the same rollback lands (over the registry: its signature read again).
TEST_F(SignedSites, ARollbackIsDecidedAgainByThePolicyOfNow) {
  const json& images = stack().info()["signed"]["images"];
  const std::string proxy = stack().proxy("proxy_anon");
  json agent = signedAgentConfig(proxy);
  agent["keepPreviousImages"] = 1;
  const json lenient = json::parse(readFile(dest_.path() / "policy.json"));
  start(agent);
  auto anonymous = [](const std::string& image) {
    return json{{"properties", {{"siteConfig", {{"linuxFxVersion", "DOCKER|" + image}}}}}};
  };
  putSite("web", anonymous(proxy + "/test/signed:ecdsa"));
  ASSERT_TRUE(waitForPublished("web", images["test/signed:ecdsa"]["digest"])) << log();
  putSite("web", anonymous(proxy + "/test/signed:twosigs"));
  ASSERT_TRUE(waitForPublished("web", images["test/signed:twosigs"]["digest"])) << log();

  // The policy of now rejects the previous image's name.
  json stricter = lenient;
  stricter["transports"]["docker"][proxy + "/test/signed:ecdsa"] =
      json::array({{{"type", "reject"}}});
  auto reload = [&](const json& policy) {
    writeFile(dest_.path() / "policy.json", policy.dump());
    const size_t mark = notify_->mark();
    daemon_->kill(SIGHUP);
    ASSERT_TRUE(notify_->waitForLine("READY=1", seconds(5), mark)) << notify_->all();
  };
  // A reload checks the published site again: the rollback is asked once that has ended.
  auto rollback = [&] {
    ProcessResult result;
    for (int i = 0; i < 100; ++i) {
      result = runProcess({PULLAGENT_BINARY, "rollback", "web", "--socket",
                           (dest_.path() / "control.sock").string()});
      if (result.all().find("the site is pulling") == std::string::npos)
        break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return result;
  };
  reload(stricter);
  auto refused = rollback();
  EXPECT_EQ(refused.exit_code, 1) << refused.all() << log();
  EXPECT_NE(refused.all().find("its previous image was not published again: signature: "),
            std::string::npos)
      << refused.all();
  EXPECT_NE(refused.all().find("rejects every image"), std::string::npos) << refused.all();
  EXPECT_EQ(siteState("web")["published"]["digest"], images["test/signed:twosigs"]["digest"]);

  reload(lenient);
  stack().reset(proxy);
  auto rolled = rollback();
  EXPECT_EQ(rolled.exit_code, 0) << rolled.all() << log();
  EXPECT_EQ(siteState("web")["published"]["digest"], images["test/signed:ecdsa"]["digest"]);
  EXPECT_TRUE(siteState("web")["rolledBack"].get<bool>());
  const std::string hex = images["test/signed:ecdsa"]["digest"].get<std::string>().substr(7);
  EXPECT_FALSE(requests(proxy, "/manifests/sha256-" + hex + ".sig").empty());
  for (const auto& layer : images["test/signed:ecdsa"]["layers"])
    EXPECT_TRUE(requests(proxy, layer["digest"].get<std::string>()).empty());
}

// A warm image is checked under the signature policy as a site's image is, and its verdict is
// counted in pullagent_signature_verifications_total: a signed one is pulled and recorded, an
// unsigned one is refused before any of its layers is asked for.
TEST_F(SignedSites, AWarmImageTakesItsVerdictAndIsCountedAsASitePullIs) {
  const json& images = stack().info()["signed"]["images"];
  const std::string proxy = stack().proxy("proxy_anon");
  json agent = signedAgentConfig(proxy);
  agent["warmImages"] = json::array(
      {{{"image", proxy + "/test/signed:ecdsa"}}, {{"image", proxy + "/test/signed:unsigned"}}});
  start(agent);
  const std::string signed_digest = images["test/signed:ecdsa"]["digest"];
  ASSERT_TRUE(waitUntil(
      [&] {
        return std::filesystem::exists(stateDir() / "warm.json") &&
               readFile(stateDir() / "warm.json").find(signed_digest) != std::string::npos;
      },
      seconds(60)))
      << log();
  ASSERT_TRUE(waitUntil([&] {
    const std::string scraped = metrics();
    return scraped.find(
               "pullagent_signature_verifications_total{check=\"none\",result="
               "\"accepted\"} 1\n") != std::string::npos &&
           scraped.find("result=\"refused\"}") != std::string::npos;
  })) << metrics()
      << log();
  EXPECT_EQ(readFile(stateDir() / "warm.json").find(images["test/signed:unsigned"]["digest"]),
            std::string::npos);
  for (const auto& layer : images["test/signed:unsigned"]["layers"])
    EXPECT_TRUE(requests(proxy, layer["digest"].get<std::string>()).empty());
}

}  // namespace
}  // namespace pullagent::testing
