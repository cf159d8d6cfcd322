// containerd's hosts.toml as pullagent reads it: the files containerd's docs show, the order of
// the hosts, relative paths, and errors that name the key.
#include "puller/mirror/hosts_config.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "tests/support/temp_dir.h"

namespace pullagent::puller {
namespace {

namespace fs = std::filesystem;

TEST(HostsToml, MirrorsInFileOrderThenTheOrigin) {
  // Written in an order no map would keep.
  auto hosts = parseHostsToml(R"(
server = "https://registry-1.docker.io"

[host."https://zz-mirror.local:5000"]
  capabilities = ["pull", "resolve"]
  ca = "certs/mirror-ca.pem"
  [host."https://zz-mirror.local:5000".header]
    x-custom = ["one", "two"]
    x-single = "three"

[host."http://127.0.0.1:4001"]
  capabilities = ["pull"]
  override_path = true

[host."aa-cache.local/base/path/"]
  client = [["/etc/c.crt", "/etc/c.key"], "both.pem"]
  skip_verify = true
)",
                              "/etc/containerd/certs.d/docker.io", "docker.io");
  ASSERT_TRUE(hosts.ok()) << hosts.error().message;
  ASSERT_EQ(hosts->size(), 4u);
  const auto& first = (*hosts)[0];
  EXPECT_EQ(first.scheme, "https");
  EXPECT_EQ(first.host, "zz-mirror.local:5000");
  EXPECT_EQ(first.path, "/v2");
  EXPECT_TRUE(first.can(kCapabilityPull));
  EXPECT_TRUE(first.can(kCapabilityResolve));
  EXPECT_FALSE(first.can(kCapabilityPush));
  ASSERT_EQ(first.ca_files.size(), 1u);
  EXPECT_EQ(first.ca_files[0], "/etc/containerd/certs.d/docker.io/certs/mirror-ca.pem");
  const std::vector<std::pair<std::string, std::string>> headers{
      {"x-custom", "one"}, {"x-custom", "two"}, {"x-single", "three"}};
  EXPECT_EQ(first.headers, headers);
  EXPECT_FALSE(first.origin);

  const auto& second = (*hosts)[1];
  EXPECT_EQ(second.scheme, "http");
  EXPECT_EQ(second.host, "127.0.0.1:4001");
  EXPECT_EQ(second.path, "");  // override_path: the URL is the API root
  EXPECT_TRUE(second.can(kCapabilityPull));
  EXPECT_FALSE(second.can(kCapabilityResolve));

  const auto& third = (*hosts)[2];
  EXPECT_EQ(third.scheme, "https");  // no scheme: https
  EXPECT_EQ(third.host, "aa-cache.local");
  EXPECT_EQ(third.path, "/base/path/v2");
  ASSERT_EQ(third.client_pairs.size(), 2u);
  EXPECT_EQ(third.client_pairs[0].first, "/etc/c.crt");
  EXPECT_EQ(third.client_pairs[0].second, "/etc/c.key");
  EXPECT_EQ(third.client_pairs[1].first, "/etc/containerd/certs.d/docker.io/both.pem");
  EXPECT_TRUE(third.client_pairs[1].second.empty());
  EXPECT_EQ(third.skip_verify, true);
  EXPECT_EQ(third.capabilities, kCapabilityPull | kCapabilityResolve | kCapabilityPush);

  const auto& origin = (*hosts)[3];
  EXPECT_TRUE(origin.origin);
  EXPECT_EQ(origin.host, "registry-1.docker.io");
  EXPECT_EQ(origin.path, "/v2");
}

TEST(HostsToml, WithoutServerTheOriginIsTheRegistryItself) {
  auto hosts = parseHostsToml("[host.\"https://m.local\"]\n", "/d", "myreg.azurecr.io");
  ASSERT_TRUE(hosts.ok()) << hosts.error().message;
  ASSERT_EQ(hosts->size(), 2u);
  EXPECT_EQ((*hosts)[1].host, "myreg.azurecr.io");
  EXPECT_EQ((*hosts)[1].scheme, "https");
  EXPECT_TRUE((*hosts)[1].origin);
  auto docker = parseHostsToml("", "/d", "docker.io");
  ASSERT_TRUE(docker.ok());
  EXPECT_EQ((*docker)[0].host, "registry-1.docker.io");
}

TEST(HostsToml, ErrorsNameTheFileAndTheKey) {
  struct Case {
    const char* text;
    const char* expected;
  };
  for (const auto& c : {
           Case{"[host.\"https://m\"]\ncapabilities = [\"pull\", \"pushh\"]\n",
                "host.\"https://m\".capabilities: unknown capability \"pushh\""},
           Case{"[host.\"https://m\"]\nca = 5\n", "host.\"https://m\".ca: expected a string"},
           Case{"[host.\"https://m\"]\nclient = [[\"a\"]]\n",
                "host.\"https://m\".client[0]: expected [certificate, key], got 1 files"},
           Case{"[host.\"https://m\"]\nskip_verify = \"yes\"\n",
                "host.\"https://m\".skip_verify: expected true or false"},
           Case{"[host.\"ftp://m\"]\n", "scheme \"ftp\" is neither https nor http"},
           Case{"server = \"https://user@evil\"\n", "server: user info in a host URL"},
           Case{"server = \"https://\"\n", "server: \"https://\" does not name a host"},
           Case{"[host.\"https://m\"]\noverride_path = \"yes\"\n",
                "host.\"https://m\".override_path: expected true or false"},
           Case{"[host.\"https://m\".header]\n\"x key\" = \"v\"\n",
                "host.\"https://m\".header.x key: not an HTTP header name"},
           Case{"[host.\"https://m\".header]\nx-key = \"v\\r\\nInjected: 1\"\n",
                "host.\"https://m\".header.x-key: a header value must not hold a line break"},
           Case{"server = [\"x\"]\n", "server: expected a URL, got array"},
           Case{"host = 1\n", "host: expected tables"},
           Case{"[host.\"https://m\"\n", "/d/hosts.toml"},  // TOML syntax: toml11's message
       }) {
    auto hosts = parseHostsToml(c.text, "/d", "reg.io");
    ASSERT_FALSE(hosts.ok()) << c.text;
    EXPECT_EQ(hosts.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(hosts.error().message.find(c.expected), std::string::npos)
        << c.text << " -> " << hosts.error().message;
  }
  // A password in a host URL never comes back in the error, in the key path or the message.
  auto leaked = parseHostsToml("[host.\"https://user:s3cret@m:5000\"]\n", "/d", "reg.io");
  ASSERT_FALSE(leaked.ok());
  EXPECT_EQ(leaked.error().message.find("s3cret"), std::string::npos) << leaked.error().message;
  EXPECT_NE(leaked.error().message.find("user info"), std::string::npos);
}

TEST(HostsDirectory, HostThenPortFormThenDefaultThenDockerCertificates) {
  testing::TempDir dir;
  fs::create_directories(dir / "_default");
  testing::writeFile(dir / "_default/hosts.toml", "[host.\"https://default-mirror\"]\n");
  fs::create_directories(dir / "reg.io_5000_");
  testing::writeFile(dir / "reg.io_5000_/hosts.toml", "[host.\"https://port-mirror\"]\n");
  fs::create_directories(dir / "certs.only");
  testing::writeFile(dir / "certs.only/ca.crt", "");
  testing::writeFile(dir / "certs.only/client.cert", "");
  testing::writeFile(dir / "certs.only/client.key", "");

  auto port = loadRegistryHosts(dir.path(), "reg.io:5000");
  ASSERT_TRUE(port.ok()) << port.error().message;
  EXPECT_EQ((*port)[0].host, "port-mirror");
  EXPECT_EQ((*port)[1].host, "reg.io:5000");

  auto fallback = loadRegistryHosts(dir.path(), "other.io");
  ASSERT_TRUE(fallback.ok()) << fallback.error().message;
  EXPECT_EQ((*fallback)[0].host, "default-mirror");
  EXPECT_EQ((*fallback)[1].host, "other.io");

  auto certs = loadRegistryHosts(dir.path(), "certs.only");
  ASSERT_TRUE(certs.ok()) << certs.error().message;
  ASSERT_EQ(certs->size(), 1u);
  EXPECT_EQ((*certs)[0].ca_files, std::vector<fs::path>{dir / "certs.only/ca.crt"});
  ASSERT_EQ((*certs)[0].client_pairs.size(), 1u);
  EXPECT_EQ((*certs)[0].client_pairs[0].second, dir / "certs.only/client.key");

  testing::TempDir empty;
  auto none = loadRegistryHosts(empty.path(), "reg.io");
  ASSERT_TRUE(none.ok());
  ASSERT_EQ(none->size(), 1u);
  EXPECT_TRUE((*none)[0].origin);
  // A name that is not a directory name never leaves the config dir.
  auto escape = loadRegistryHosts(dir.path(), "..");
  ASSERT_TRUE(escape.ok());
  EXPECT_EQ((*escape)[0].host, "default-mirror");
}

}  // namespace
}  // namespace pullagent::puller
