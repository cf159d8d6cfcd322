#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/host_resolver.h"
#include "base/version.h"
#include "puller/http/http_client.h"

namespace pullagent::puller {

struct HttpClientOptions {
  HostResolver* resolver = nullptr;  // required: every host is resolved here and pinned into curl
  // PEM file trusted in addition to the system CAs (a private registry's CA).
  std::optional<std::string> extra_ca_file;
  // More PEM files trusted in addition (a mirror's `ca` list in hosts.toml).
  std::vector<std::string> more_ca_files;
  // A client certificate (PEM) and its key for mutual TLS; an empty key: the key is in the
  // certificate's file (hosts.toml `client`).
  std::optional<std::pair<std::string, std::string>> client_certificate;
  // Skip verifying the server's certificate: only for a mirror whose hosts.toml says
  // skip_verify and only when the agent config allows it. Never set for registries or identity.
  bool skip_verify = false;
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(15)};
  // The progress rule: a transfer whose average rate over the last `stall_timeout` falls below
  // `min_rate` bytes/s is abandoned (and resumed by the caller). A registry that dribbles a few
  // bytes a second is cut off as surely as one that sends nothing. Blobs have no total timeout:
  // a multi-GB layer on a slow link is fine while it keeps the rate.
  std::chrono::seconds stall_timeout{30};
  int64_t min_rate = 8 * 1024;
  // Answers read into memory (manifests, configs, tokens, identity and Key Vault answers, error
  // bodies) are small: the whole exchange, connect included, must end within this.
  std::chrono::milliseconds document_timeout{std::chrono::seconds(60)};
  // Response headers beyond this many bytes in all are a protocol error (curl's own cap answers
  // "out of memory").
  size_t max_header_bytes = 64 * 1024;
  std::string user_agent = userAgent();
  // Bind outgoing connections to a source address or interface (VNet integration): curl's
  // CURLOPT_INTERFACE syntax, "host!10.1.0.4" or "if!vnet0".
  std::optional<std::string> bind_to;
};

// HttpClient over libcurl: TLS verification always on, HTTP/2 when the server offers it,
// connections and TLS sessions shared between threads, no redirects followed by curl.
class CurlHttpClient final : public HttpClient {
 public:
  static Result<std::unique_ptr<CurlHttpClient>> create(HttpClientOptions options);
  ~CurlHttpClient() override;

  Result<HttpResponse> send(const HttpRequest& request, const Context& ctx) override;

 private:
  struct Impl;
  explicit CurlHttpClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The libcurl in use and its TLS backend ("8.x.y (OpenSSL/3.x)"), for --version.
std::string curlVersion();

}  // namespace pullagent::puller
