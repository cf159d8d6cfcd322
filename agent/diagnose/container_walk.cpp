#include "agent/diagnose/container_walk.h"

#include <algorithm>

#include "agent/diagnose/connection_probe.h"
#include "agent/identity/key_vault.h"
#include "agent/site/site_pull.h"
#include "agent/site/site_state.h"
#include "base/redact.h"
#include "puller/auth/authorizer.h"
#include "puller/auth/challenge.h"
#include "puller/auth/jwt.h"
#include "puller/auth/token_cache.h"
#include "puller/http/curl_http_client.h"
#include "puller/http/url.h"
#include "puller/mirror/hosts_config.h"
#include "puller/oci/manifest.h"
#include "puller/pipeline/image_puller.h"
#include "puller/registry/registry_client.h"
#include "resolver/ares_resolver.h"

namespace pullagent::agent {
namespace {

constexpr std::string_view kAzureRegistrySuffix = ".azurecr.io";

bool isAzureRegistry(const std::string& host) {
  return host.size() > kAzureRegistrySuffix.size() && host.ends_with(kAzureRegistrySuffix);
}

std::string joined(const std::vector<std::string>& items, std::string_view separator = ", ") {
  std::string text;
  for (const auto& item : items)
    text += (text.empty() ? "" : std::string(separator)) + item;
  return text;
}

// The steps that cannot run once `failed` did, in the catalogue's order.
void skipRest(StepLog& log, std::initializer_list<std::string_view> ids, const std::string& why) {
  for (auto id : ids)
    log.skipped(std::string(id), "skipped: " + why);
}

class Walk {
 public:
  Walk(const DiagnoseServices& services, const SiteConfig& site, const SiteContainer& container,
       const SiteRoute& route, StepLog& log, const Context& ctx)
      : services_(services),
        agent_(services.agent),
        site_(site),
        container_(container),
        route_(route),
        log_(log),
        ctx_(ctx),
        cache_(services.clock) {}

  ContainerFindings run() {
    const bool credentials = credentialSteps();
    auto registry = puller::Url::parse("https://" + container_.image.apiHost() + "/v2/");
    if (!registry) {
      log_.begin();
      log_.failed("dns.registry", registry.error(), "correct the image reference's registry");
      return findings_;
    }
    registry_ = registry.value();
    const bool reachable = networkSteps();
    const bool identity = identityStep();
    if (!reachable || !credentials || !identity) {
      skipRest(log_,
               {"registry.token", "registry.manifest", "registry.config", "registry.blob",
                "dns.data-endpoint", "http.data-endpoint"},
               !reachable ? "the registry is not reachable" : "no credentials to present");
    } else if (tokenStep()) {
      registrySteps();
    } else {
      skipRest(log_,
               {"registry.manifest", "registry.config", "registry.blob", "dns.data-endpoint",
                "http.data-endpoint"},
               "registry.token failed");
    }
    mirrorsStep();
    return findings_;
  }

 private:
  // site.credentials and site.key-vault: false when the credentials cannot be had.
  bool credentialSteps() {
    log_.begin();
    std::string said = describeAuth(container_);
    switch (container_.auth) {
      case RegistryAuth::kManagedIdentity:
        said += container_.name.empty()
                    ? (container_.identity_client_id.empty()
                           ? " (acrUseManagedIdentityCreds is true, acrUserManagedIdentityID unset)"
                           : " (acrUseManagedIdentityCreds is true, acrUserManagedIdentityID)")
                    : " (the sitecontainer's authType)";
        credentials_.aad_resource = agent_.acr_audience;
        break;
      case RegistryAuth::kBasic:
        said += ": user from " +
                std::string(container_.registry_username->key_vault ? "a Key Vault reference"
                                                                    : "the setting") +
                ", password from " + container_.password_source +
                (container_.registry_password->key_vault ? " (a Key Vault reference)" : "");
        break;
      case RegistryAuth::kAnonymous:
        said +=
            ": no managed identity and no registry credentials apply to " + container_.image.domain;
        break;
    }
    log_.ok("site.credentials", said);

    log_.begin();
    if (container_.auth != RegistryAuth::kBasic) {
      log_.skipped("site.key-vault", "no Key Vault reference: the credentials are not settings");
      return true;
    }
    std::vector<std::string> read;
    auto resolve = [&](const SettingValue& value, const std::string& name) -> Result<Secret> {
      if (!value.key_vault)
        return value.literal;
      const KeyVaultReference& ref = *value.key_vault;
      const bool system =
          site_.key_vault_identity.empty() || site_.key_vault_identity == "SystemAssigned";
      auto& identity = services_.identities.identity("", system ? "" : site_.key_vault_identity);
      const std::string what = name + ": vault " + ref.vault_url + ", secret " + ref.secret_name +
                               ", version " + ref.version.value_or("latest (not pinned)") +
                               ", read with the " + identity.identityName();
      auto token = identity.token("https://vault.azure.net", ctx_);
      if (!token) {
        fix_ = "assign the " + identity.identityName() +
               " to the site (keyVaultReferenceIdentity: " + site_.key_vault_identity + ")";
        return token.error().context(what);
      }
      auto secret = readKeyVaultSecret(*route_.http, identity, ref, ctx_);
      if (!secret) {
        fix_ = keyVaultFix(secret.error(), ref, identity.identityName());
        return secret.error().context(what);
      }
      read.push_back(what);
      return secret;
    };
    auto username = resolve(*container_.registry_username, "user");
    if (!username) {
      log_.failed("site.key-vault", username.error(), fix_);
      return false;
    }
    auto password = resolve(*container_.registry_password, "password");
    if (!password) {
      log_.failed("site.key-vault", password.error(), fix_);
      return false;
    }
    credentials_.username = username->revealForWire();
    credentials_.password = password.value();
    if (read.empty())
      log_.skipped("site.key-vault", "no Key Vault reference: the settings hold the values");
    else
      log_.ok("site.key-vault", joined(read, "; "));
    return true;
  }

  static std::string keyVaultFix(const Error& error, const KeyVaultReference& ref,
                                 const std::string& identity) {
    if (error.message.find("is disabled") != std::string::npos) {
      return ref.version ? "the Key Vault reference pins version " + *ref.version +
                               ", which is disabled: drop the version or point it at the "
                               "current one"
                         : "enable the secret " + ref.secret_name + " in " + ref.vault_url;
    }
    switch (error.code) {
      case ErrorCode::kPermissionDenied:
      case ErrorCode::kUnauthenticated:
        return "grant the " + identity + " get on secrets in " + ref.vault_url +
               " (the Key Vault Secrets User role, or an access policy)";
      case ErrorCode::kNotFound:
        return "create the secret " + ref.secret_name +
               (ref.version ? " (version " + *ref.version + ")" : "") + " in " + ref.vault_url +
               ", or correct the reference";
      default:
        return "make " + ref.vault_url +
               " reachable on the site's route (over the VNet: its private endpoint and DNS)";
    }
  }

  // dns.registry, tcp.registry, tls.registry, http.challenge: false when the registry's API is
  // not reachable.
  bool networkSteps() {
    auto addresses = dnsStep("dns.registry", registry_.host);
    if (!addresses) {
      skipRest(log_, {"tcp.registry", "tls.registry", "http.challenge"}, "dns.registry failed");
      return false;
    }
    log_.begin();
    auto connection =
        connectFirst(*addresses, registry_.port, std::chrono::milliseconds(agent_.connect_timeout),
                     route_.http_options.bind_to, ctx_);
    if (!connection) {
      log_.failed("tcp.registry", connection.error().context(registry_.hostPort()),
                  "open TCP port " + std::to_string(registry_.port) + " to " + registry_.host +
                      " from this host" + (site_.pull_over_vnet ? " through the VNet" : "") +
                      " (network security group, firewall), or check that the registry is up");
      skipRest(log_, {"tls.registry", "http.challenge"}, "tcp.registry failed");
      return false;
    }
    log_.ok("tcp.registry", "connected to " + connection->address + " port " +
                                std::to_string(registry_.port) +
                                (connection->refused.empty()
                                     ? ""
                                     : " (first refused: " + joined(connection->refused) + ")"));
    log_.begin();
    if (!tlsStep(connection->fd.get())) {
      skipRest(log_, {"http.challenge"}, "tls.registry failed");
      return false;
    }
    return challengeStep();
  }

  // A name on the route, judged; nullopt (and a failed step) when it does not resolve usably.
  std::optional<std::vector<std::string>> dnsStep(const std::string& id, const std::string& host) {
    log_.begin();
    if (auto it = agent_.host_overrides.find(host); it != agent_.host_overrides.end()) {
      log_.ok(id, host + " -> " + joined(it->second) + " (hostOverrides in the agent config)");
      return it->second;
    }
    if (!route_.vnet) {
      auto addresses = route_.resolver->resolve(host, ctx_);
      if (!addresses) {
        log_.failed(id, addresses.error(),
                    "the host's resolver cannot resolve " + host +
                        ": fix the host's DNS, or pull over the VNet if the name is only "
                        "resolvable there (vnetImagePullEnabled)");
        return std::nullopt;
      }
      log_.ok(id, host + " -> " + joined(*addresses) + " (the host's resolver, public route)");
      return addresses.value();
    }
    auto answer = route_.vnet->lookup(host, ctx_);
    if (!answer) {
      std::string fix;
      if (answer.error().code == ErrorCode::kNotFound) {
        fix = isAzureRegistry(host)
                  ? "link the private DNS zone privatelink.azurecr.io to the site's VNet, with a "
                    "record for " +
                        host.substr(0, host.size() - kAzureRegistrySuffix.size()) +
                        " (the registry's private endpoint; a dedicated data endpoint needs its "
                        "own record)"
                  : "make the VNet's DNS servers resolve " + host;
      } else {
        fix =
            "the VNet's DNS servers do not answer: check dnsConfiguration.dnsServers / "
            "WEBSITE_DNS_SERVER and that they are reachable from the host";
      }
      log_.failed(id, answer.error(), fix);
      return std::nullopt;
    }
    std::string said = host;
    for (const auto& name : answer->chain)
      said += " -> " + name;
    said += " -> " + joined(answer->addresses) + " (VNet DNS, ttl " + std::to_string(answer->ttl) +
            " s)";
    const DnsJudgement judgement = judgeDnsAnswer(answer->chain, answer->addresses);
    if (judgement.zone_not_linked) {
      log_.failed(id,
                  makeError(ErrorCode::kNotFound,
                            said + ": a private-link name answered with a public address"),
                  "link the private DNS zone " + judgement.zone +
                      " to the site's VNet (the VNet's DNS answers from public DNS)");
      return std::nullopt;
    }
    const bool all_public =
        std::all_of(answer->addresses.begin(), answer->addresses.end(), resolver::isPublicAddress);
    log_.ok(id, said + (all_public ? ", public addresses" : ", private addresses"));
    return std::move(answer->addresses);
  }

  bool tlsStep(int fd) {
    auto facts = probeTls(fd, registry_.host, agent_.ca_bundle,
                          std::chrono::milliseconds(agent_.connect_timeout));
    if (!facts) {
      log_.failed(
          "tls.registry", facts.error().context(registry_.hostPort()),
          "the registry must speak TLS 1.2 or later on port " + std::to_string(registry_.port));
      return false;
    }
    const std::string until = formatUtc(facts->not_after);
    const std::string said = facts->protocol + ", certificate " +
                             (facts->chain.empty() ? "?" : facts->chain.front()) + " by " +
                             facts->issuer + ", names " + joined(facts->names) + ", valid until " +
                             until + ", checked against " + facts->trust;
    if (facts->expired) {
      log_.failed("tls.registry",
                  makeError(ErrorCode::kUntrusted, said + ": the certificate has expired"),
                  "renew the certificate of " + registry_.host + ": it expired at " + until);
      return false;
    }
    if (!facts->name_matches) {
      log_.failed("tls.registry",
                  makeError(ErrorCode::kUntrusted,
                            said + ": the certificate does not name " + registry_.host),
                  "the certificate names " + joined(facts->names) + ", not " + registry_.host +
                      ": reissue it with " + registry_.host +
                      " among its names, or use a name it carries in the image reference");
      return false;
    }
    if (facts->verify_code != 0) {
      log_.failed(
          "tls.registry", makeError(ErrorCode::kUntrusted, said + ": " + facts->verify_error),
          "trust the registry's CA: add it to caBundle in the agent config (now: " + facts->trust +
              ")");
      return false;
    }
    log_.ok("tls.registry", said);
    return true;
  }

  bool challengeStep() {
    log_.begin();
    puller::HttpRequest request;
    request.url = registry_.str();
    auto response = route_.http->send(request, ctx_);
    if (!response) {
      log_.failed("http.challenge", response.error(),
                  "the registry's API at " + registry_.hostPort() + " does not answer");
      return false;
    }
    challenge_ = *response;
    const int status = response->status;
    if (status == 200) {
      log_.ok("http.challenge", "HTTP 200: the registry asks for no credentials");
      return true;
    }
    if (status == 401) {
      auto challenges = puller::parseChallenges(response->headerValues("WWW-Authenticate"));
      std::string said;
      for (const auto& challenge : challenges) {
        said += (said.empty() ? "" : "; ") + challenge.scheme;
        if (auto realm = challenge.param("realm"))
          said += " realm " + redactUrl(*realm);
        if (auto service = challenge.param("service"))
          said += " service " + safeEscaped(*service);
      }
      log_.ok("http.challenge", "HTTP 401 with " + (said.empty() ? "no challenge" : said));
      return true;
    }
    Error error = makeError(status == 403 ? ErrorCode::kPermissionDenied : ErrorCode::kUnavailable,
                            registry_.hostPort() + " answered GET /v2/ with HTTP " +
                                std::to_string(status) + ": " + safeQuoted(response->body));
    std::string fix = "the registry's API must answer GET /v2/ with 200 or 401";
    if (status == 403 && response->body.find("not allowed access") != std::string::npos) {
      fix = site_.pull_over_vnet
                ? "the registry refuses this host's VNet address: allow the VNet in the "
                  "registry's networking rules, or reach it through its private endpoint"
                : "the registry allows only its private endpoint: enable vnetImagePullEnabled "
                  "on the site (outboundVnetRouting.imagePullTraffic in newer API versions)";
    } else if (status >= 500) {
      fix = "the registry is failing (HTTP " + std::to_string(status) + "): try again later";
    }
    log_.failed("http.challenge", error, fix);
    return false;
  }

  bool identityStep() {
    log_.begin();
    if (container_.auth != RegistryAuth::kManagedIdentity) {
      log_.skipped("identity.token", "no managed identity: " + describeAuth(container_));
      return true;
    }
    auto& identity = services_.identities.identity(container_.identity_client_id);
    const std::string endpoint =
        std::string(agent_.identity.kind == IdentityEndpoint::Kind::kImds ? "IMDS "
                                                                          : "App Service ") +
        redactUrl(agent_.identity.url);
    auto token = identity.token(agent_.acr_audience, ctx_);
    if (!token) {
      std::string fix;
      if (token.error().code == ErrorCode::kUnauthenticated) {
        fix = container_.identity_client_id.empty()
                  ? "enable the site's system-assigned identity (Identity > System assigned)"
                  : "assign the user-assigned identity " + container_.identity_client_id +
                        " to the site (Identity > User assigned), or correct "
                        "acrUserManagedIdentityID";
      } else {
        fix = "the identity endpoint " + endpoint +
              " does not answer: check the host's "
              "identity service";
      }
      log_.failed("identity.token", token.error(), fix);
      return false;
    }
    credentials_.aad = &identity;
    log_.ok("identity.token", "a token for " + agent_.acr_audience + " from " + endpoint +
                                  " for the " + identity.identityName());
    return true;
  }

  std::string scope() const { return container_.image.pullScope(); }

  // registry.token: the token the registry wants, and what it grants.
  bool tokenStep() {
    log_.begin();
    if (challenge_.status == 200 && credentials_.empty()) {
      log_.skipped("registry.token", "the registry asked for no credentials");
      authorizer_.emplace(*route_.http, services_.clock, cache_, credentials_, false);
      return true;
    }
    authorizer_.emplace(*route_.http, services_.clock, cache_, credentials_, false);
    if (challenge_.status == 401) {
      if (auto learnt = authorizer_->onUnauthorized(registry_, challenge_, scope(), std::nullopt);
          !learnt) {
        log_.failed("registry.token", learnt.error(), credentialsFix(learnt.error()));
        return false;
      }
    }
    auto header = authorizer_->authorize(registry_, scope(), ctx_);
    if (!header) {
      log_.failed("registry.token", header.error(), credentialsFix(header.error()));
      return false;
    }
    if (!*header) {
      log_.skipped("registry.token", "the registry asked for no credentials");
      return true;
    }
    const std::string& value = (*header)->revealForWire();
    if (value.starts_with("Basic ")) {
      puller::HttpRequest request;
      request.url = registry_.str();
      request.authorization = **header;
      auto response = route_.http->send(request, ctx_);
      if (!response) {
        log_.failed("registry.token", response.error(), "the registry stopped answering");
        return false;
      }
      if (response->status != 200) {
        Error refused = makeError(ErrorCode::kUnauthenticated,
                                  registry_.hostPort() + " refused the username and password of " +
                                      safeQuoted(credentials_.username) + " (HTTP " +
                                      std::to_string(response->status) + ")");
        log_.failed("registry.token", refused, credentialsFix(refused));
        return false;
      }
      log_.ok("registry.token", "Basic credentials of " + safeQuoted(credentials_.username) +
                                    " accepted (GET /v2/ answered 200)");
      return true;
    }
    auto claims = puller::readJwtClaims(value.substr(std::string_view("Bearer ").size()));
    if (!claims || !claims->access) {
      log_.ok("registry.token",
              "a bearer token for " + scope() + " (opaque: what it grants cannot be read)");
      return true;
    }
    const std::string wanted = "repository:" + container_.image.repository + ":";
    const bool granted =
        std::any_of(claims->access->begin(), claims->access->end(), [&](const std::string& entry) {
          if (!entry.starts_with(wanted))
            return false;
          const std::string actions = "," + entry.substr(wanted.size()) + ",";
          return actions.find(",pull,") != std::string::npos ||
                 actions.find(",*,") != std::string::npos;
        });
    const std::string grants = claims->access->empty() ? "nothing" : joined(*claims->access, " ");
    if (!granted) {
      Error denied = makeError(ErrorCode::kPermissionDenied,
                               "the registry's token for " + scope() + " grants " + grants);
      log_.failed("registry.token", denied, credentialsFix(denied));
      return false;
    }
    log_.ok("registry.token", "a bearer token granting " + grants);
    return true;
  }

  std::string credentialsFix(const Error& error) const {
    const std::string registry = container_.image.domain;
    switch (container_.auth) {
      case RegistryAuth::kManagedIdentity:
        return "assign AcrPull on " + registry + " to the " +
               (container_.identity_client_id.empty()
                    ? std::string("site's system-assigned identity")
                    : "identity " + container_.identity_client_id);
      case RegistryAuth::kBasic:
        if (error.code == ErrorCode::kPermissionDenied) {
          return "give the user " + safeQuoted(credentials_.username) + " pull on " +
                 container_.image.repository + " in " + registry;
        }
        if (container_.registry_password->key_vault) {
          const KeyVaultReference& ref = *container_.registry_password->key_vault;
          return ref.version ? "the Key Vault reference pins version " + *ref.version + " of " +
                                   ref.secret_name +
                                   ", which the registry refuses: drop the version or point it "
                                   "at the current password"
                             : "set the secret " + ref.secret_name + " in " + ref.vault_url +
                                   " to the registry's current password";
        }
        return "update " + container_.password_source +
               " (and the user name) to the registry's current credentials";
      case RegistryAuth::kAnonymous:
        break;
    }
    return registry + " does not allow anonymous pulls of " + container_.image.repository +
           ": set acrUseManagedIdentityCreds or DOCKER_REGISTRY_SERVER_USERNAME/PASSWORD";
  }

  // registry.manifest, registry.config, registry.blob, dns.data-endpoint, http.data-endpoint.
  void registrySteps() {
    puller::RetryPolicy policy;
    policy.max_attempts = 2;
    puller::RegistryEndpoint endpoint{"https", registry_.hostPort(), container_.image.repository};
    puller::RegistryClient client(*route_.http, *authorizer_, services_.clock, services_.random,
                                  policy, endpoint);
    log_.begin();
    auto manifest = manifestStep(client);
    if (!manifest) {
      skipRest(log_,
               {"registry.config", "registry.blob", "dns.data-endpoint", "http.data-endpoint"},
               "registry.manifest failed");
      return;
    }
    findings_.manifest_read = true;
    findings_.compressed_bytes = manifest->config.size;
    for (const auto& layer : manifest->layers)
      findings_.compressed_bytes += layer.size;

    log_.begin();
    if (auto head = client.headBlob(manifest->config, ctx_); !head) {
      log_.failed("registry.config", head.error(),
                  "the registry lists the image but not its config blob " +
                      manifest->config.digest.str() +
                      " for these credentials: push the image "
                      "again");
    } else {
      log_.ok("registry.config", manifest->config.digest.str() + ", " +
                                     std::to_string(manifest->config.size) + " bytes");
    }
    if (manifest->layers.empty()) {
      skipRest(log_, {"registry.blob", "dns.data-endpoint", "http.data-endpoint"},
               "the image has no layers");
      return;
    }
    blobSteps(manifest->layers.front());
  }

  std::optional<puller::ImageManifest> manifestStep(puller::RegistryClient& client) {
    const std::string reference = container_.image.manifestReference();
    auto fetched = client.fetchManifest(reference, container_.image.digest, ctx_);
    if (!fetched) {
      std::string fix;
      if (fetched.error().code == ErrorCode::kNotFound) {
        fix = container_.image.tag && !container_.image.digest
                  ? "push " + container_.image.str() + ", or point the site at a tag that " +
                        container_.image.repository + " has"
                  : "push the image, or point the site at a digest the repository has";
      } else if (fetched.error().code == ErrorCode::kUnauthenticated ||
                 fetched.error().code == ErrorCode::kPermissionDenied) {
        fix = credentialsFix(fetched.error());
      } else {
        fix = "the registry fails to serve the manifest: try again later";
      }
      log_.failed("registry.manifest", fetched.error(), fix);
      return std::nullopt;
    }
    auto document = puller::parseManifest(fetched->bytes, fetched->media_type);
    if (!document) {
      log_.failed("registry.manifest", document.error(),
                  "push the image again with a current Docker or OCI client");
      return std::nullopt;
    }
    std::string said =
        reference + " -> " + fetched->digest.str() + " (" + fetched->media_type + ")";
    if (auto* index = std::get_if<puller::ImageIndex>(&document.value())) {
      const puller::Platform want = puller::PullOptions{}.platform;
      std::vector<std::string> platforms;
      for (const auto& entry : index->manifests) {
        if (entry.platform)
          platforms.push_back(entry.platform->str());
      }
      said += ", platforms " + joined(platforms);
      auto chosen = puller::selectPlatform(*index, want);
      if (!chosen) {
        log_.failed("registry.manifest",
                    makeError(ErrorCode::kNotFound, said + ": none is " + want.str()),
                    "build and push the image for " + want.str() +
                        " (docker buildx build "
                        "--platform " +
                        want.str() + ")");
        return std::nullopt;
      }
      auto platform_manifest = client.fetchManifest(chosen->digest.str(), chosen->digest, ctx_);
      if (!platform_manifest) {
        log_.failed("registry.manifest", platform_manifest.error(),
                    "the index lists a manifest the registry does not serve: push the image "
                    "again");
        return std::nullopt;
      }
      document = puller::parseManifest(platform_manifest->bytes, platform_manifest->media_type);
      if (!document || !std::holds_alternative<puller::ImageManifest>(document.value())) {
        log_.failed("registry.manifest",
                    document ? makeError(ErrorCode::kUnsupported, "an index inside an index")
                             : document.error(),
                    "push the image again with a current Docker or OCI client");
        return std::nullopt;
      }
      said += "; " + want.str() + " -> " + chosen->digest.str();
    }
    auto manifest = std::get<puller::ImageManifest>(std::move(document.value()));
    int64_t bytes = manifest.config.size;
    for (const auto& layer : manifest.layers)
      bytes += layer.size;
    said += ", " + std::to_string(manifest.layers.size()) + " layers, " + std::to_string(bytes) +
            " bytes compressed";
    log_.ok("registry.manifest", said);
    return manifest;
  }

  // GETs `url` and stops at the headers: the status and where it redirects, never the body.
  Result<puller::HttpResponseHead> headOnly(const std::string& url,
                                            std::optional<Secret> authorization) {
    puller::HttpRequest request;
    request.url = url;
    request.authorization = std::move(authorization);
    request.headers.push_back({"Range", "bytes=0-0"});
    std::optional<puller::HttpResponseHead> head;
    request.on_head = [&](const puller::HttpResponseHead& seen) -> Status {
      head = seen;
      return makeError(ErrorCode::kCancelled, "enough: the headers are all a diagnosis needs");
    };
    request.on_body = [](std::string_view) -> Status { return {}; };
    auto response = route_.http->send(request, ctx_);
    if (head)
      return *head;
    if (!response)
      return response.error();
    return static_cast<puller::HttpResponseHead>(*response);
  }

  void blobSteps(const puller::Descriptor& layer) {
    log_.begin();
    const std::string url =
        registry_.origin() + "/v2/" + container_.image.repository + "/blobs/" + layer.digest.str();
    auto parsed = puller::Url::parse(url);
    std::optional<Secret> authorization;
    if (parsed) {
      auto header = authorizer_->authorize(*parsed, scope(), ctx_);
      if (header && *header)
        authorization = **header;
    }
    auto head = headOnly(url, authorization);
    if (!head) {
      log_.failed("registry.blob", head.error().context(layer.digest.str()),
                  "the registry fails to serve its blobs: try again later");
      skipRest(log_, {"dns.data-endpoint", "http.data-endpoint"}, "registry.blob failed");
      return;
    }
    const int status = head->status;
    if (status == 200 || status == 206) {
      log_.ok("registry.blob", layer.digest.str() + ": served by the registry itself (HTTP " +
                                   std::to_string(status) + ")");
      skipRest(log_, {"dns.data-endpoint", "http.data-endpoint"}, "no redirect");
      return;
    }
    auto location = head->header("Location");
    if (status < 300 || status >= 400 || !location) {
      log_.failed("registry.blob",
                  makeError(status == 404 ? ErrorCode::kNotFound : ErrorCode::kUnavailable,
                            layer.digest.str() + ": HTTP " + std::to_string(status)),
                  status == 404 ? "the registry lists a layer it does not have: push the image "
                                  "again"
                                : "the registry fails to serve its blobs: try again later");
      skipRest(log_, {"dns.data-endpoint", "http.data-endpoint"}, "registry.blob failed");
      return;
    }
    auto target = puller::Url::resolve(url, *location);
    if (!target) {
      log_.failed("registry.blob", target.error(), "the registry redirects to a malformed URL");
      skipRest(log_, {"dns.data-endpoint", "http.data-endpoint"}, "registry.blob failed");
      return;
    }
    log_.ok("registry.blob", layer.digest.str() + ": HTTP " + std::to_string(status) + " to " +
                                 redactUrl(target->str()));
    if (target->sameOrigin(registry_)) {
      skipRest(log_, {"dns.data-endpoint", "http.data-endpoint"}, "redirected to the registry");
      return;
    }
    if (!dnsStep("dns.data-endpoint", target->host)) {
      skipRest(log_, {"http.data-endpoint"}, "dns.data-endpoint failed");
      return;
    }
    log_.begin();
    auto answer = headOnly(target->str(), std::nullopt);
    if (!answer) {
      log_.failed("http.data-endpoint", answer.error().context(target->hostPort()),
                  "make " + target->host + " reachable from this host" +
                      (site_.pull_over_vnet ? " through the VNet (the data endpoint's private "
                                              "endpoint)"
                                            : "") +
                      ": allow it in the firewall");
      return;
    }
    if (answer->status != 200 && answer->status != 206) {
      log_.failed(
          "http.data-endpoint",
          makeError(answer->status == 403 ? ErrorCode::kPermissionDenied : ErrorCode::kUnavailable,
                    target->hostPort() + " answered HTTP " + std::to_string(answer->status)),
          "the data endpoint " + target->host +
              " refuses this host: allow the route's address in the registry's "
              "networking rules");
      return;
    }
    log_.ok("http.data-endpoint",
            target->hostPort() + " answered HTTP " + std::to_string(answer->status));
  }

  void mirrorsStep() {
    log_.begin();
    if (!agent_.registry_hosts_dir) {
      log_.skipped("host.mirrors", "no registryHostsDir in the agent config");
      return;
    }
    auto hosts = puller::loadRegistryHosts(*agent_.registry_hosts_dir, container_.image.domain);
    if (!hosts) {
      log_.failed("host.mirrors", hosts.error(), "correct the hosts.toml named above");
      return;
    }
    std::vector<std::string> said;
    std::optional<Error> failure;
    for (const auto& host : *hosts) {
      if (host.origin)
        continue;
      puller::HttpClientOptions options = route_.http_options;
      for (const auto& ca : host.ca_files)
        options.more_ca_files.push_back(ca.string());
      auto http = puller::CurlHttpClient::create(options);
      if (!http) {
        failure = http.error();
        break;
      }
      puller::HttpRequest request;
      request.url = host.scheme + "://" + host.host + host.path + "/";
      auto response = (*http)->send(request, ctx_);
      if (!response) {
        failure = response.error().context("mirror " + host.host + " (" + host.config_file + ")");
        break;
      }
      said.push_back(host.host + " answered HTTP " + std::to_string(response->status));
    }
    if (failure) {
      log_.failed("host.mirrors", *failure,
                  "the mirror does not answer: pulls fall through to the next source; fix or "
                  "remove it from hosts.toml");
      return;
    }
    if (said.empty())
      log_.skipped("host.mirrors", "no mirror applies to " + container_.image.domain);
    else
      log_.ok("host.mirrors", joined(said, "; "));
  }

  const DiagnoseServices& services_;
  const AgentConfig& agent_;
  const SiteConfig& site_;
  const SiteContainer& container_;
  const SiteRoute& route_;
  StepLog& log_;
  const Context& ctx_;
  puller::TokenCache cache_;
  puller::RegistryCredentials credentials_;
  std::optional<puller::Authorizer> authorizer_;
  puller::Url registry_;
  puller::HttpResponse challenge_;
  ContainerFindings findings_;
  std::string fix_;
};

}  // namespace

DnsJudgement judgeDnsAnswer(const std::vector<std::string>& chain,
                            const std::vector<std::string>& addresses) {
  DnsJudgement judgement;
  for (const auto& name : chain) {
    auto at = name.find("privatelink.");
    if (at != std::string::npos && (at == 0 || name[at - 1] == '.')) {
      judgement.zone = name.substr(at);
      if (judgement.zone.ends_with("."))
        judgement.zone.pop_back();
    }
  }
  judgement.zone_not_linked =
      !judgement.zone.empty() && !addresses.empty() &&
      std::all_of(addresses.begin(), addresses.end(), resolver::isPublicAddress);
  return judgement;
}

ContainerFindings walkContainer(const DiagnoseServices& services, const SiteConfig& site,
                                const SiteContainer& container, const SiteRoute& route,
                                StepLog& log, const Context& ctx) {
  return Walk(services, site, container, route, log, ctx).run();
}

}  // namespace pullagent::agent
