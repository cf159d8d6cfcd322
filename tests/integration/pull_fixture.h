#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/support/process.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_stack.h"

namespace pullagent::testing {

// Runs the real pullagent binary against the shared registry stack. Every test starts with
// clean fault lists and request logs on every server, and its own destination directory.
class PullTest : public ::testing::Test {
 protected:
  void SetUp() override;

  TestStack& stack() { return TestStack::shared(); }
  // The Azure emulators' addresses and identities (stack.json "azure").
  const nlohmann::json& azure() { return stack().info()["azure"]; }
  // pullagent pull IMAGE --dest <dest> --ca <stack CA> ARGS...
  ProcessResult pull(const std::string& image, const std::vector<std::string>& args = {});
  std::vector<std::string> pullCommand(const std::string& image,
                                       const std::vector<std::string>& args) const;

  // A site (ARM shape) pulling test/multi:v1 from the htpasswd registry with admin credentials
  // in its app settings; `password` may be a Key Vault reference.
  nlohmann::json credentialsSite(const std::string& password);

  // A SITECONTAINERS site (`az webapp show` shape with the sitecontainers list): a main
  // container and three sidecars, each authenticated its own way: "web" (ACR, user-assigned
  // identity, privatewebsite:lnx-v1), "cache" (htpasswd registry, UserCredentials with
  // passwordSecret naming an app setting), "logs" (anonymous registry, `logs_image`), "otel"
  // (ACR, system-assigned identity, lnx-v2: shares its base layer with web). The site's
  // DOCKER_REGISTRY_SERVER_* are wrong: they must not apply.
  nlohmann::json sidecarSite(const std::string& logs_image);

  std::string tokenCreds() const;
  std::string basicCreds() const;

  bool hasBlob(const std::string& digest) const;
  // Names in the ingest directory (unverified leftovers).
  std::vector<std::string> ingestFiles() const;
  // Requests a server saw whose path contains `fragment`.
  std::vector<nlohmann::json> requests(const std::string& server, const std::string& fragment);
  // Body bytes the proxy sent for paths containing `fragment`.
  int64_t bytesServed(const std::string& server, const std::string& fragment);

  TempDir dest_{"pullagent-dest"};
};

}  // namespace pullagent::testing
