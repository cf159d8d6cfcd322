#include "agent/config/agent_config.h"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cctype>

#include "base/json_reader.h"
#include "resolver/dns_servers.h"

namespace pullagent::agent {
namespace {

constexpr int64_t kDay = 86400;

// Every key the agent config has, and those of its identity object. A key outside them is an
// error: a misspelt setting ("stateDIr") must not leave the host on the default silently.
constexpr std::array<std::string_view, 55> kTopLevelKeys = {"stateDir",
                                                            "sitesDir",
                                                            "identity",
                                                            "acrAudience",
                                                            "caBundle",
                                                            "hostOverrides",
                                                            "vnetDnsServers",
                                                            "vnetBindTo",
                                                            "dnsTimeoutMs",
                                                            "dnsTries",
                                                            "metricsAddress",
                                                            "controlSocket",
                                                            "maxConcurrentPulls",
                                                            "maxRunningPulls",
                                                            "pullSlotSeconds",
                                                            "pullSlotIdleSeconds",
                                                            "rescanIntervalSeconds",
                                                            "tagPollIntervalSeconds",
                                                            "refreshOnStart",
                                                            "storage",
                                                            "lazyPulling",
                                                            "discardUnpackedLayers",
                                                            "sharedBlobProof",
                                                            "webhookAddress",
                                                            "webhookSecret",
                                                            "registryHostsDir",
                                                            "allowSkipVerify",
                                                            "shareRegistryThrottle",
                                                            "maxRequestsPerRegistry",
                                                            "siteRemovalGraceSeconds",
                                                            "retryInitialBackoffSeconds",
                                                            "retryMaxBackoffSeconds",
                                                            "connectTimeoutSeconds",
                                                            "stallTimeoutSeconds",
                                                            "minTransferRateBytesPerSecond",
                                                            "documentTimeoutSeconds",
                                                            "attemptDeadlineSeconds",
                                                            "seccompProfile",
                                                            "concurrency",
                                                            "retries",
                                                            "rangeConcurrency",
                                                            "rangePartMiB",
                                                            "diskHighWatermarkPercent",
                                                            "diskLowWatermarkPercent",
                                                            "stateDirHighWatermarkBytes",
                                                            "stateDirLowWatermarkBytes",
                                                            "diskCheckIntervalSeconds",
                                                            "keepPreviousImages",
                                                            "warmImages",
                                                            "additionalStores",
                                                            "signaturePolicy",
                                                            "notationDir",
                                                            "imageVerifierDir",
                                                            "imageVerifierMax",
                                                            "imageVerifierTimeoutSeconds"};
constexpr std::array<std::string_view, 2> kIdentityKeys = {"kind", "endpoint"};

template <size_t N>
Status checkKeys(const JsonReader& object, const std::array<std::string_view, N>& known,
                 std::string_view what) {
  ASSIGN_OR_RETURN(auto members, object.members());
  for (const auto& [key, value] : members) {
    if (std::find(known.begin(), known.end(), key) != known.end())
      continue;
    std::string hint;
    for (const auto candidate : known) {
      if (candidate.size() == key.size() &&
          std::equal(key.begin(), key.end(), candidate.begin(), [](char a, char b) {
            return std::tolower(static_cast<unsigned char>(a)) ==
                   std::tolower(static_cast<unsigned char>(b));
          })) {
        hint = " (did you mean \"" + std::string(candidate) + "\"?)";
      }
    }
    return value.error("is not a setting of " + std::string(what) + hint);
  }
  return {};
}

bool isIpAddress(const std::string& text) {
  std::array<unsigned char, 16> buffer{};
  return ::inet_pton(AF_INET, text.c_str(), buffer.data()) == 1 ||
         ::inet_pton(AF_INET6, text.c_str(), buffer.data()) == 1;
}

// A host name as it may appear in a URL: letters, digits, '-', '.', '_'.
bool isHostName(const std::string& text) {
  if (text.empty() || text.size() > 253)
    return false;
  for (char c : text) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.' && c != '_')
      return false;
  }
  return true;
}

// Reads the optional settings of one document into the fields that hold their defaults.
class SettingsReader {
 public:
  explicit SettingsReader(const JsonReader& doc) : doc_(doc) {}

  Status string(const char* key, std::string& out) const {
    ASSIGN_OR_RETURN(auto value, doc_[key].optionalString());
    if (value)
      out = std::move(*value);
    return {};
  }
  Status boolean(const char* key, bool& out) const {
    ASSIGN_OR_RETURN(auto value, doc_[key].optionalBoolean());
    if (value)
      out = *value;
    return {};
  }
  Status path(const char* key, std::filesystem::path& out) const {
    std::string text = out.string();
    RETURN_IF_ERROR(string(key, text));
    out = text;
    return {};
  }
  Status integer(const char* key, int& out, int64_t min, int64_t max) const {
    ASSIGN_OR_RETURN(auto value, doc_[key].optionalInteger(min, max));
    if (value)
      out = static_cast<int>(*value);
    return {};
  }
  Status integer(const char* key, int64_t& out, int64_t min, int64_t max) const {
    ASSIGN_OR_RETURN(auto value, doc_[key].optionalInteger(min, max));
    if (value)
      out = *value;
    return {};
  }
  template <typename Duration>
  Status duration(const char* key, Duration& out, int64_t min, int64_t max) const {
    ASSIGN_OR_RETURN(auto value, doc_[key].optionalInteger(min, max));
    if (value)
      out = std::chrono::duration_cast<Duration>(std::chrono::seconds(*value));
    return {};
  }
  Result<std::vector<std::string>> addresses(const JsonReader& list) const {
    ASSIGN_OR_RETURN(auto items, list.elements());
    if (items.empty())
      return list.error("expected a non-empty array of IP addresses");
    std::vector<std::string> out;
    for (const auto& item : items) {
      ASSIGN_OR_RETURN(auto text, item.string());
      if (!isIpAddress(text))
        return item.typeError("an IP address");
      out.push_back(std::move(text));
    }
    return out;
  }

 private:
  const JsonReader& doc_;
};

// The state dir is removed from, recursively, by gc: it must be a dedicated absolute directory.
Status checkStateDir(const JsonReader& value, const std::filesystem::path& dir) {
  if (dir.empty() || !dir.is_absolute())
    return value.error("must be an absolute path, got \"" + dir.string() + "\"");
  const auto normal = dir.lexically_normal();
  if (normal == normal.root_path())
    return value.error("must be a directory of its own, not \"/\"");
  for (const auto& part : dir) {
    if (part == "..")
      return value.error("must not contain \"..\", got \"" + dir.string() + "\"");
  }
  return {};
}

Result<IdentityEndpoint> readIdentity(const JsonReader& doc,
                                      const std::map<std::string, std::string>& environment) {
  IdentityEndpoint identity;
  const JsonReader section = doc["identity"];
  if (!section.missing()) {
    if (!section.isObject())
      return section.typeError("an object");
    RETURN_IF_ERROR(checkKeys(section, kIdentityKeys, "the identity"));
    ASSIGN_OR_RETURN(auto kind, section["kind"].optionalString());
    if (kind == "appService") {
      identity.kind = IdentityEndpoint::Kind::kAppService;
    } else if (kind && kind != "imds") {
      return section["kind"].typeError("\"imds\" or \"appService\"");
    }
    ASSIGN_OR_RETURN(auto endpoint, section["endpoint"].optionalString());
    if (endpoint) {
      identity.url = *endpoint;
    } else if (identity.kind == IdentityEndpoint::Kind::kAppService) {
      // App Service names its identity endpoint in the environment; never the IMDS address.
      auto from_environment = environment.find("IDENTITY_ENDPOINT");
      if (from_environment == environment.end())
        return section["endpoint"].error(
            "missing: \"appService\" needs the endpoint here or IDENTITY_ENDPOINT in the "
            "environment");
      identity.url = from_environment->second;
    }
  } else if (auto endpoint = environment.find("IDENTITY_ENDPOINT"); endpoint != environment.end()) {
    identity.kind = IdentityEndpoint::Kind::kAppService;
    identity.url = endpoint->second;
  }
  if (identity.kind == IdentityEndpoint::Kind::kAppService) {
    auto header = environment.find("IDENTITY_HEADER");
    if (header == environment.end()) {
      return makeError(
          ErrorCode::kInvalidArgument,
          "the App Service identity endpoint needs IDENTITY_HEADER in the environment");
    }
    identity.header = Secret(header->second);
  }
  return identity;
}

}  // namespace

std::vector<std::string> agentConfigKeys() {
  std::vector<std::string> keys;
  for (const auto key : kTopLevelKeys) {
    if (key != "identity")  // an object: its own keys are the settings
      keys.emplace_back(key);
  }
  for (const auto key : kIdentityKeys)
    keys.push_back("identity." + std::string(key));
  return keys;
}

namespace {

// The disk settings: watermarks of the state dir's filesystem and of its own bytes, how often
// they are checked, and the previous images each site keeps while space allows.
Status readDisk(const JsonReader& doc, const SettingsReader& read, AgentConfig& config) {
  auto& marks = config.disk_watermarks;
  RETURN_IF_ERROR(read.integer("diskHighWatermarkPercent", marks.high_percent, 1, 100));
  RETURN_IF_ERROR(read.integer("diskLowWatermarkPercent", marks.low_percent, 0, 99));
  if (marks.low_percent >= marks.high_percent) {
    return doc["diskLowWatermarkPercent"].error("must be below diskHighWatermarkPercent (" +
                                                std::to_string(marks.high_percent) + "), got " +
                                                std::to_string(marks.low_percent));
  }
  ASSIGN_OR_RETURN(marks.high_bytes,
                   doc["stateDirHighWatermarkBytes"].optionalInteger(1, int64_t{1} << 56));
  ASSIGN_OR_RETURN(marks.low_bytes,
                   doc["stateDirLowWatermarkBytes"].optionalInteger(0, int64_t{1} << 56));
  if (marks.high_bytes.has_value() != marks.low_bytes.has_value()) {
    return doc[marks.high_bytes ? "stateDirLowWatermarkBytes" : "stateDirHighWatermarkBytes"].error(
        "must be set with " +
        std::string(marks.high_bytes ? "stateDirHighWatermarkBytes" : "stateDirLowWatermarkBytes"));
  }
  if (marks.high_bytes && *marks.low_bytes >= *marks.high_bytes) {
    return doc["stateDirLowWatermarkBytes"].error("must be below stateDirHighWatermarkBytes (" +
                                                  std::to_string(*marks.high_bytes) + "), got " +
                                                  std::to_string(*marks.low_bytes));
  }
  RETURN_IF_ERROR(read.duration("diskCheckIntervalSeconds", config.disk_check_interval, 1, kDay));
  RETURN_IF_ERROR(read.integer("keepPreviousImages", config.keep_previous_images, 0, 10));
  return {};
}

constexpr size_t kMaxWarmImages = 64;
constexpr std::array<std::string_view, 4> kWarmImageKeys = {"image", "managedIdentity", "username",
                                                            "passwordFile"};

// warmImages: [{"image": REF, "managedIdentity": "system" | CLIENT_ID} | {"image": REF,
// "username": U, "passwordFile": PATH} | {"image": REF}].
Result<std::vector<WarmImageConfig>> readWarmImages(const JsonReader& list) {
  std::vector<WarmImageConfig> images;
  if (list.missing())
    return images;
  ASSIGN_OR_RETURN(auto entries, list.elements());
  if (entries.size() > kMaxWarmImages)
    return list.error("at most " + std::to_string(kMaxWarmImages) + " warm images");
  for (const auto& entry : entries) {
    if (!entry.isObject())
      return entry.typeError("an object");
    RETURN_IF_ERROR(checkKeys(entry, kWarmImageKeys, "a warm image"));
    WarmImageConfig image;
    ASSIGN_OR_RETURN(auto text, entry["image"].string());
    auto ref = puller::ImageRef::parse(text);
    if (!ref)
      return entry["image"].error(ref.error().message);
    image.ref = std::move(ref.value());
    ASSIGN_OR_RETURN(auto identity, entry["managedIdentity"].optionalString());
    ASSIGN_OR_RETURN(auto username, entry["username"].optionalString());
    ASSIGN_OR_RETURN(auto password_file, entry["passwordFile"].optionalString());
    if (identity && (username || password_file))
      return entry.error(
          "managedIdentity and username/passwordFile are two ways to sign in: "
          "name one");
    if (identity) {
      image.auth = WarmImageConfig::Auth::kManagedIdentity;
      if (*identity != "system")
        image.identity_client_id = *identity;
      if (image.identity_client_id.empty() && *identity != "system")
        return entry["managedIdentity"].error("\"system\" or a user-assigned identity's client id");
    } else if (username || password_file) {
      if (!username || username->empty() || !password_file)
        return entry.error("username and passwordFile go together");
      if (!std::filesystem::path(*password_file).is_absolute())
        return entry["passwordFile"].error("must be an absolute path");
      image.auth = WarmImageConfig::Auth::kBasic;
      image.username = *username;
      image.password_file = *password_file;
    }
    if (std::any_of(images.begin(), images.end(), [&](const WarmImageConfig& other) {
          return other.ref.str() == image.ref.str();
        })) {
      return entry.error("\"" + text + "\" is listed twice");
    }
    images.push_back(std::move(image));
  }
  return images;
}

constexpr size_t kMaxAdditionalStores = 16;
constexpr std::array<std::string_view, 2> kStoreKeys = {"path", "registries"};

// additionalStores: [{"path": "/var/lib/pullagent-seed", "registries": ["myreg.azurecr.io"]}].
Result<std::vector<puller::AdditionalStore>> readAdditionalStores(const JsonReader& list,
                                                                  const AgentConfig& config) {
  std::vector<puller::AdditionalStore> stores;
  if (list.missing())
    return stores;
  ASSIGN_OR_RETURN(auto entries, list.elements());
  if (entries.size() > kMaxAdditionalStores)
    return list.error("at most " + std::to_string(kMaxAdditionalStores) + " stores");
  for (const auto& entry : entries) {
    if (!entry.isObject())
      return entry.typeError("an object");
    RETURN_IF_ERROR(checkKeys(entry, kStoreKeys, "an additional store"));
    puller::AdditionalStore store;
    ASSIGN_OR_RETURN(auto path, entry["path"].string());
    store.root = std::filesystem::path(path).lexically_normal();
    if (!store.root.is_absolute())
      return entry["path"].error("must be an absolute path, got \"" + path + "\"");
    if (store.root == config.state_dir.root())
      return entry["path"].error("is the state dir itself");
    ASSIGN_OR_RETURN(auto registries, entry["registries"].elements());
    if (registries.empty())
      return entry["registries"].error("name the registries the store holds images of");
    for (const auto& registry : registries) {
      ASSIGN_OR_RETURN(auto host, registry.string());
      if (!puller::isValidRegistryDomain(host))
        return registry.error("not a registry host: \"" + host.substr(0, 80) + "\"");
      store.registries.push_back(host);
    }
    stores.push_back(std::move(store));
  }
  return stores;
}

}  // namespace

Result<AgentConfig> parseAgentConfig(std::string_view json_text,
                                     const std::map<std::string, std::string>& environment) {
  ASSIGN_OR_RETURN(auto parsed, parseJson(json_text, "agent config", ErrorCode::kInvalidArgument));
  const JsonReader doc(parsed, "agent config", ErrorCode::kInvalidArgument);
  if (!doc.isObject())
    return doc.typeError("an object");
  RETURN_IF_ERROR(checkKeys(doc, kTopLevelKeys, "the agent config"));
  AgentConfig config;
  const SettingsReader read(doc);

  std::filesystem::path state_dir = config.state_dir.root();
  RETURN_IF_ERROR(read.path("stateDir", state_dir));
  RETURN_IF_ERROR(checkStateDir(doc["stateDir"], state_dir));
  config.state_dir = puller::StateDir(state_dir);
  RETURN_IF_ERROR(read.path("sitesDir", config.sites_dir));
  if (!config.sites_dir.is_absolute())
    return doc["sitesDir"].error("must be an absolute path");
  RETURN_IF_ERROR(read.string("acrAudience", config.acr_audience));
  std::string ca;
  RETURN_IF_ERROR(read.string("caBundle", ca));
  if (!ca.empty())
    config.ca_bundle = ca;

  if (!doc["vnetDnsServers"].missing()) {
    ASSIGN_OR_RETURN(auto servers, doc["vnetDnsServers"].elements());
    if (servers.empty())
      return doc["vnetDnsServers"].error("expected a non-empty array of DNS servers");
    config.vnet_dns_servers.clear();
    for (const auto& server : servers) {
      ASSIGN_OR_RETURN(auto text, server.string());
      if (auto dns = resolver::DnsServer::parse(text); !dns)
        return server.error(dns.error().message);
      config.vnet_dns_servers.push_back(std::move(text));
    }
  }
  std::string bind;
  RETURN_IF_ERROR(read.string("vnetBindTo", bind));
  if (!bind.empty()) {
    if (!bind.starts_with("host!") && !bind.starts_with("if!"))
      return doc["vnetBindTo"].typeError("\"host!<address>\" or \"if!<interface>\"");
    config.vnet_bind = bind;
  }
  ASSIGN_OR_RETURN(auto dns_timeout_ms, doc["dnsTimeoutMs"].optionalInteger(1, kDay * 1000));
  if (dns_timeout_ms)
    config.dns_timeout = std::chrono::milliseconds(*dns_timeout_ms);
  RETURN_IF_ERROR(read.integer("dnsTries", config.dns_tries, 1, 100));

  std::string metrics;
  RETURN_IF_ERROR(read.string("metricsAddress", metrics));
  if (!metrics.empty())
    config.metrics_address = metrics;
  RETURN_IF_ERROR(read.path("controlSocket", config.control_socket));
  if (!config.control_socket.is_absolute()) {
    return doc["controlSocket"].error("must be an absolute path, got \"" +
                                      config.control_socket.string() + "\"");
  }
  RETURN_IF_ERROR(read.integer("maxConcurrentPulls", config.max_concurrent_pulls, 1, 64));
  config.max_running_pulls = 4 * config.max_concurrent_pulls;
  RETURN_IF_ERROR(read.integer("maxRunningPulls", config.max_running_pulls, 1, 256));
  if (config.max_running_pulls < config.max_concurrent_pulls)
    return doc["maxRunningPulls"].error("must be at least maxConcurrentPulls");
  RETURN_IF_ERROR(read.duration("pullSlotSeconds", config.pull_slot, 1, kDay));
  RETURN_IF_ERROR(read.duration("pullSlotIdleSeconds", config.pull_slot_idle, 1, kDay));
  RETURN_IF_ERROR(read.duration("rescanIntervalSeconds", config.rescan_interval, 1, kDay));
  RETURN_IF_ERROR(read.duration("tagPollIntervalSeconds", config.tag_poll_interval, 1, kDay));
  RETURN_IF_ERROR(read.boolean("refreshOnStart", config.refresh_on_start));
  RETURN_IF_ERROR(read.string("storage", config.storage));
  RETURN_IF_ERROR(read.boolean("discardUnpackedLayers", config.discard_unpacked_layers));
  RETURN_IF_ERROR(read.string("sharedBlobProof", config.shared_blob_proof));
  if (config.shared_blob_proof != "head" && config.shared_blob_proof != "fetch") {
    return doc["sharedBlobProof"].error("expected \"head\" or \"fetch\", got \"" +
                                        config.shared_blob_proof + "\"");
  }
  if (config.storage != "auto" && config.storage != "overlay" && config.storage != "flat")
    return doc["storage"].error("expected \"auto\", \"overlay\" or \"flat\", got \"" +
                                config.storage + "\"");
  RETURN_IF_ERROR(read.string("lazyPulling", config.lazy_pulling));
  if (config.lazy_pulling != "off" && config.lazy_pulling != "estargz")
    return doc["lazyPulling"].error("expected \"off\" or \"estargz\", got \"" +
                                    config.lazy_pulling + "\"");
  std::string webhook;
  RETURN_IF_ERROR(read.string("webhookAddress", webhook));
  ASSIGN_OR_RETURN(auto secret, doc["webhookSecret"].secret().optionalString());
  if (!webhook.empty()) {
    // A listener on the network takes pushes from whoever knows the secret: a guessable one
    // would let anyone make every site check its registry.
    if (!secret || secret->size() < 16)
      return doc["webhookSecret"].error("must be set, 16 characters or more, with webhookAddress");
    config.webhook_address = webhook;
    config.webhook_secret = Secret(*secret);
  }
  std::filesystem::path hosts_dir;
  RETURN_IF_ERROR(read.path("registryHostsDir", hosts_dir));
  if (!hosts_dir.empty()) {
    if (!hosts_dir.is_absolute())
      return doc["registryHostsDir"].error("must be an absolute path, got \"" + hosts_dir.string() +
                                           "\"");
    config.registry_hosts_dir = hosts_dir;
  }
  RETURN_IF_ERROR(read.boolean("allowSkipVerify", config.allow_skip_verify));
  RETURN_IF_ERROR(read.boolean("shareRegistryThrottle", config.share_registry_throttle));
  RETURN_IF_ERROR(
      read.integer("maxRequestsPerRegistry", config.max_requests_per_registry, 0, 1024));
  RETURN_IF_ERROR(read.duration("siteRemovalGraceSeconds", config.site_removal_grace, 0, 7 * kDay));
  RETURN_IF_ERROR(
      read.duration("retryInitialBackoffSeconds", config.retry_initial_backoff, 1, kDay));
  RETURN_IF_ERROR(read.duration("retryMaxBackoffSeconds", config.retry_max_backoff, 1, kDay));
  if (config.retry_max_backoff < config.retry_initial_backoff)
    return doc["retryMaxBackoffSeconds"].error("must be at least retryInitialBackoffSeconds");

  RETURN_IF_ERROR(read.duration("connectTimeoutSeconds", config.connect_timeout, 1, kDay));
  RETURN_IF_ERROR(read.duration("stallTimeoutSeconds", config.stall_timeout, 1, kDay));
  RETURN_IF_ERROR(
      read.integer("minTransferRateBytesPerSecond", config.min_transfer_rate, 1, int64_t{1} << 40));
  RETURN_IF_ERROR(read.duration("documentTimeoutSeconds", config.document_timeout, 1, kDay));
  RETURN_IF_ERROR(read.duration("attemptDeadlineSeconds", config.attempt_deadline, 1, 7 * kDay));
  ASSIGN_OR_RETURN(auto seccomp, doc["seccompProfile"].optionalString());
  if (seccomp && seccomp->empty())
    config.seccomp_profile.reset();
  else if (seccomp && !std::filesystem::path(*seccomp).is_absolute())
    return doc["seccompProfile"].error("must be an absolute path, or \"\" for none");
  else if (seccomp)
    config.seccomp_profile = *seccomp;
  RETURN_IF_ERROR(read.integer("concurrency", config.concurrency, 1, 64));
  RETURN_IF_ERROR(read.integer("retries", config.retries, 1, 100));
  RETURN_IF_ERROR(read.integer("rangeConcurrency", config.range_concurrency, 1, 16));
  RETURN_IF_ERROR(read.integer("rangePartMiB", config.range_part_mib, 1, 1024));

  ASSIGN_OR_RETURN(config.identity, readIdentity(doc, environment));
  RETURN_IF_ERROR(readDisk(doc, read, config));
  ASSIGN_OR_RETURN(config.warm_images, readWarmImages(doc["warmImages"]));
  ASSIGN_OR_RETURN(config.additional_stores, readAdditionalStores(doc["additionalStores"], config));
  std::shared_ptr<const puller::ContainersPolicy> containers_policy;
  ASSIGN_OR_RETURN(auto policy_path, doc["signaturePolicy"].optionalString());
  if (policy_path) {
    if (!std::filesystem::path(*policy_path).is_absolute())
      return doc["signaturePolicy"].error("must be an absolute path, got \"" + *policy_path + "\"");
    // Read with the config, so that a broken policy is a config error at start and at reload
    // (the running config stays), and a reload takes an edited policy.
    auto policy = puller::ContainersPolicy::load(*policy_path);
    if (!policy)
      return doc["signaturePolicy"].error(policy.error().message);
    containers_policy = std::make_shared<const puller::ContainersPolicy>(std::move(policy).value());
  }
  std::shared_ptr<const puller::NotationPolicy> notation_policy;
  ASSIGN_OR_RETURN(auto notation_dir, doc["notationDir"].optionalString());
  if (notation_dir) {
    if (!std::filesystem::path(*notation_dir).is_absolute())
      return doc["notationDir"].error("must be an absolute path, got \"" + *notation_dir + "\"");
    auto policy = puller::NotationPolicy::load(*notation_dir);
    if (!policy)
      return doc["notationDir"].error(policy.error().message);
    notation_policy = std::make_shared<const puller::NotationPolicy>(std::move(policy).value());
  }
  std::optional<puller::ExternalVerifierConfig> verifiers;
  ASSIGN_OR_RETURN(auto verifier_dir, doc["imageVerifierDir"].optionalString());
  if (verifier_dir) {
    if (!std::filesystem::path(*verifier_dir).is_absolute())
      return doc["imageVerifierDir"].error("must be an absolute path, got \"" + *verifier_dir +
                                           "\"");
    puller::ExternalVerifierConfig settings;
    settings.bin_dir = *verifier_dir;
    RETURN_IF_ERROR(read.integer("imageVerifierMax", settings.max_verifiers, -1, 1000));
    int timeout = 10;
    RETURN_IF_ERROR(read.integer("imageVerifierTimeoutSeconds", timeout, 1, 3600));
    settings.per_verifier_timeout = std::chrono::seconds(timeout);
    verifiers = settings;
  } else {
    for (const char* key : {"imageVerifierMax", "imageVerifierTimeoutSeconds"}) {
      if (!doc[key].missing())
        return doc[key].error("applies only with imageVerifierDir");
    }
  }
  if (containers_policy || notation_policy || verifiers)
    config.signature_policy = std::make_shared<const puller::TrustPolicy>(
        std::move(containers_policy), std::move(notation_policy), std::move(verifiers));

  if (!doc["hostOverrides"].missing()) {
    ASSIGN_OR_RETURN(auto hosts, doc["hostOverrides"].members());
    for (const auto& [host, addresses] : hosts) {
      if (!isHostName(host))
        return addresses.error("\"" + host.substr(0, 80) + "\" is not a host name");
      ASSIGN_OR_RETURN(config.host_overrides[host], read.addresses(addresses));
    }
  }
  return config;
}

}  // namespace pullagent::agent
