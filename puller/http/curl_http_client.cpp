#include "puller/http/curl_http_client.h"

#include <arpa/inet.h>
#include <curl/curl.h>

#include <array>
#include <fstream>
#include <mutex>
#include <sstream>
#include <vector>

#include "base/redact.h"
#include "base/unique_handle.h"
#include "puller/http/curl_errors.h"
#include "puller/http/url.h"

namespace pullagent::puller {
namespace {

using CurlEasy = UniqueHandle<CURL, curl_easy_cleanup>;
using CurlSlist = UniqueHandle<curl_slist, curl_slist_free_all>;

bool isNumericAddress(const std::string& host) {
  std::array<unsigned char, sizeof(in6_addr)> buffer{};
  return ::inet_pton(AF_INET, host.c_str(), buffer.data()) == 1 ||
         ::inet_pton(AF_INET6, host.c_str(), buffer.data()) == 1;
}

Result<std::string> readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return makeError(ErrorCode::kInvalidArgument, "cannot read CA file " + path);
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}

// Per-transfer state that curl's C callbacks reach through their void* argument.
struct Transfer {
  const HttpRequest* request = nullptr;
  const Context* ctx = nullptr;
  HttpResponse response;
  bool head_delivered = false;
  bool streaming = false;
  size_t header_bytes = 0;
  size_t max_header_bytes = 0;
  std::optional<Error> callback_error;  // set by a callback that aborted the transfer

  bool success() const { return response.status >= 200 && response.status < 300; }

  Status deliverHead() {
    head_delivered = true;
    streaming = success() && request->on_body != nullptr;
    if (success() && request->on_head)
      return request->on_head(response);
    return {};
  }

  Status onHeaderLine(std::string_view line) {
    header_bytes += line.size();
    if (header_bytes > max_header_bytes) {
      return makeError(ErrorCode::kProtocol, "response headers exceed the " +
                                                 std::to_string(max_header_bytes) + "-byte limit");
    }
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r'))
      line.remove_suffix(1);
    if (line.starts_with("HTTP/")) {
      // A new status line (after 100 Continue or an informational answer) starts over.
      response.headers.clear();
      auto space = line.find(' ');
      response.status = space == std::string_view::npos ? 0 : std::atoi(line.data() + space + 1);
      return {};
    }
    auto colon = line.find(':');
    if (colon == std::string_view::npos)
      return {};
    auto value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
      value.remove_prefix(1);
    response.headers.push_back({std::string(line.substr(0, colon)), std::string(value)});
    return {};
  }

  Status onBody(std::string_view chunk) {
    if (!head_delivered) {
      RETURN_IF_ERROR(deliverHead());
    }
    if (streaming)
      return request->on_body(chunk);
    size_t cap = success() ? request->max_body : kMaxErrorBody;
    if (response.body.size() + chunk.size() > cap) {
      if (success()) {
        return makeError(ErrorCode::kResourceExhausted,
                         "response body larger than the " + std::to_string(cap) + "-byte limit");
      }
      // Error texts are only for humans: keep the first 64 KiB, drop the rest.
      response.body.append(chunk.substr(0, cap - response.body.size()));
      return {};
    }
    response.body.append(chunk);
    return {};
  }
};

extern "C" size_t headerTrampoline(char* data, size_t size, size_t count, void* user) noexcept {
  auto* transfer = static_cast<Transfer*>(user);
  try {
    if (auto status = transfer->onHeaderLine({data, size * count}); !status) {
      transfer->callback_error = status.error();
      return 0;
    }
  } catch (...) {
    transfer->callback_error = makeError(ErrorCode::kInternal, "exception in header callback");
    return 0;
  }
  return size * count;
}

extern "C" size_t writeTrampoline(char* data, size_t size, size_t count, void* user) noexcept {
  auto* transfer = static_cast<Transfer*>(user);
  try {
    if (auto status = transfer->onBody({data, size * count}); !status) {
      transfer->callback_error = status.error();
      return CURL_WRITEFUNC_ERROR;
    }
  } catch (...) {
    transfer->callback_error = makeError(ErrorCode::kInternal, "exception in body callback");
    return CURL_WRITEFUNC_ERROR;
  }
  return size * count;
}

extern "C" int progressTrampoline(void* user, curl_off_t, curl_off_t, curl_off_t,
                                  curl_off_t) noexcept {
  auto* transfer = static_cast<Transfer*>(user);
  if (auto status = transfer->ctx->check(); !status) {
    transfer->callback_error = status.error();
    return 1;
  }
  return 0;
}

}  // namespace

struct CurlHttpClient::Impl {
  HttpClientOptions options;
  std::string ca_blob;  // system CAs + the extra CAs, when extra CAs are configured
  // Easy handles are pooled and each is used by one thread at a time. Each keeps its own
  // connections and TLS sessions (curl_easy_reset keeps both), so keep-alive and session
  // resumption work across the requests of a pull. Nothing is shared between handles through a
  // curl share: libcurl does not support a connection cache shared by concurrent threads
  // (CURLSHOPT_SHARE(3)), and with a shared TLS session cache curl 7.88's OpenSSL backend hands
  // one SSL_SESSION to connections on several threads, which OpenSSL mutates during a handshake
  // (curl/curl#14751). ThreadSanitizer caught one thread freeing what another was copying.
  std::mutex pool_mutex;
  std::vector<CurlEasy> idle;

  CurlEasy acquire() {
    std::lock_guard lock(pool_mutex);
    if (!idle.empty()) {
      CurlEasy easy = std::move(idle.back());
      idle.pop_back();
      curl_easy_reset(easy.get());
      return easy;
    }
    return CurlEasy(curl_easy_init());
  }

  void release(CurlEasy easy) {
    std::lock_guard lock(pool_mutex);
    idle.push_back(std::move(easy));
  }

  Status configure(CURL* easy, const HttpRequest& request, const Url& url, Transfer& transfer,
                   curl_slist* headers, curl_slist* pins, char* error_buffer) {
    auto set = [&](CURLoption option, auto value, const char* name) {
      return checkSetopt(curl_easy_setopt(easy, option, value), name);
    };
    const long connect_ms = static_cast<long>(options.connect_timeout.count());
    const long stall_s = static_cast<long>(options.stall_timeout.count());
    const long min_rate = static_cast<long>(std::max<int64_t>(options.min_rate, 1));
    // Streamed bodies (blobs) live by the progress rule alone; buffered answers are documents.
    const long total_ms =
        request.on_body ? 0L : static_cast<long>(options.document_timeout.count());
    for (auto status : {
             set(CURLOPT_URL, request.url.c_str(), "URL"),
             set(CURLOPT_ERRORBUFFER, error_buffer, "ERRORBUFFER"),
             set(CURLOPT_NOSIGNAL, 1L, "NOSIGNAL"),
             set(CURLOPT_PROTOCOLS_STR, "http,https", "PROTOCOLS_STR"),
             // No proxies from the environment: connections go to the addresses our resolver
             // pinned (VNet DNS), and IMDS must never be reached through a proxy.
             set(CURLOPT_PROXY, "", "PROXY"),
             set(CURLOPT_FOLLOWLOCATION, 0L, "FOLLOWLOCATION"),
             set(CURLOPT_SSL_VERIFYPEER, options.skip_verify ? 0L : 1L, "SSL_VERIFYPEER"),
             set(CURLOPT_SSL_VERIFYHOST, options.skip_verify ? 0L : 2L, "SSL_VERIFYHOST"),
             set(CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_2TLS), "HTTP_VERSION"),
             set(CURLOPT_CONNECTTIMEOUT_MS, connect_ms, "CONNECTTIMEOUT_MS"),
             set(CURLOPT_LOW_SPEED_LIMIT, min_rate, "LOW_SPEED_LIMIT"),
             set(CURLOPT_LOW_SPEED_TIME, stall_s, "LOW_SPEED_TIME"),
             set(CURLOPT_TIMEOUT_MS, total_ms, "TIMEOUT_MS"),
             set(CURLOPT_USERAGENT, options.user_agent.c_str(), "USERAGENT"),
             set(CURLOPT_HTTPHEADER, headers, "HTTPHEADER"),
             set(CURLOPT_RESOLVE, pins, "RESOLVE"),
             set(CURLOPT_HEADERFUNCTION, headerTrampoline, "HEADERFUNCTION"),
             set(CURLOPT_HEADERDATA, &transfer, "HEADERDATA"),
             set(CURLOPT_WRITEFUNCTION, writeTrampoline, "WRITEFUNCTION"),
             set(CURLOPT_WRITEDATA, &transfer, "WRITEDATA"),
             set(CURLOPT_XFERINFOFUNCTION, progressTrampoline, "XFERINFOFUNCTION"),
             set(CURLOPT_XFERINFODATA, &transfer, "XFERINFODATA"),
             set(CURLOPT_NOPROGRESS, 0L, "NOPROGRESS"),
         }) {
      if (!status)
        return status;
    }
    if (options.bind_to) {
      RETURN_IF_ERROR(set(CURLOPT_INTERFACE, options.bind_to->c_str(), "INTERFACE"));
    }
    if (!ca_blob.empty()) {
      curl_blob blob{ca_blob.data(), ca_blob.size(), CURL_BLOB_NOCOPY};
      RETURN_IF_ERROR(set(CURLOPT_CAINFO_BLOB, &blob, "CAINFO_BLOB"));
    }
    if (options.client_certificate) {
      const auto& [certificate, key] = *options.client_certificate;
      RETURN_IF_ERROR(set(CURLOPT_SSLCERT, certificate.c_str(), "SSLCERT"));
      RETURN_IF_ERROR(
          set(CURLOPT_SSLKEY, key.empty() ? certificate.c_str() : key.c_str(), "SSLKEY"));
    }
    if (request.method == "HEAD") {
      RETURN_IF_ERROR(set(CURLOPT_NOBODY, 1L, "NOBODY"));
    } else if (request.method == "POST") {
      for (auto status : {set(CURLOPT_POST, 1L, "POST"),
                          set(CURLOPT_POSTFIELDS, request.body.c_str(), "POSTFIELDS"),
                          set(CURLOPT_POSTFIELDSIZE_LARGE,
                              static_cast<curl_off_t>(request.body.size()), "POSTFIELDSIZE")}) {
        if (!status)
          return status;
      }
    } else if (request.method != "GET") {
      if (auto status = set(CURLOPT_CUSTOMREQUEST, request.method.c_str(), "CUSTOMREQUEST");
          !status) {
        return status;
      }
    }
    (void)url;
    return {};
  }
};

Result<std::unique_ptr<CurlHttpClient>> CurlHttpClient::create(HttpClientOptions options) {
  static std::once_flag global_init;
  std::call_once(global_init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  if (options.resolver == nullptr) {
    return makeError(ErrorCode::kInternal, "CurlHttpClient needs a HostResolver");
  }
  auto impl = std::make_unique<Impl>();
  impl->options = std::move(options);

  if (impl->options.extra_ca_file || !impl->options.more_ca_files.empty()) {
    // CURLOPT_CAINFO would replace the system store; a blob of both keeps public CAs working
    // (blob storage redirects) while trusting the private registry's CA.
    std::string extra;
    if (impl->options.extra_ca_file) {
      ASSIGN_OR_RETURN(extra, readFile(*impl->options.extra_ca_file));
      extra += "\n";
    }
    for (const auto& file : impl->options.more_ca_files) {
      ASSIGN_OR_RETURN(auto pem, readFile(file));
      extra += pem + "\n";
    }
    CurlEasy probe(curl_easy_init());
    char* system_ca = nullptr;
    if (probe && curl_easy_getinfo(probe.get(), CURLINFO_CAINFO, &system_ca) == CURLE_OK &&
        system_ca != nullptr) {
      if (auto system = readFile(system_ca); system)
        impl->ca_blob = system.value() + "\n";
    }
    impl->ca_blob += extra;
  }

  return std::unique_ptr<CurlHttpClient>(new CurlHttpClient(std::move(impl)));
}

CurlHttpClient::CurlHttpClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

CurlHttpClient::~CurlHttpClient() = default;

Result<HttpResponse> CurlHttpClient::send(const HttpRequest& request, const Context& ctx) {
  RETURN_IF_ERROR(ctx.check());
  ASSIGN_OR_RETURN(auto url, Url::parse(request.url));
  const std::string what = request.method + " " + redactUrl(request.url);

  // Pin the resolver's answer into curl: curl connects to these addresses while the URL keeps
  // the host name, so SNI and certificate verification still check the name.
  CurlSlist pins;
  std::string tried = url.host;
  if (!isNumericAddress(url.host)) {
    auto addresses = impl_->options.resolver->resolve(url.host, ctx);
    if (!addresses)
      return addresses.error().context(what);
    std::string entry = resolvePinEntry(url.host, url.port, addresses.value());
    tried = entry.substr(url.host.size() + std::to_string(url.port).size() + 2);
    pins.reset(curl_slist_append(nullptr, entry.c_str()));
  }

  CurlSlist headers;
  auto append = [&](const std::string& line) {
    curl_slist* next = curl_slist_append(headers.get(), line.c_str());
    if (next != nullptr) {
      (void)headers.release();
      headers.reset(next);
    }
  };
  append("Expect:");  // no 100-continue round trip for small form posts
  for (const auto& header : request.headers)
    append(header.name + ": " + header.value);
  if (request.authorization)
    append("Authorization: " + request.authorization->revealForWire());
  for (const auto& [name, value] : request.secret_headers)
    append(name + ": " + value.revealForWire());

  CurlEasy easy = impl_->acquire();
  if (!easy)
    return makeError(ErrorCode::kResourceExhausted, "curl_easy_init failed");
  Transfer transfer;
  transfer.request = &request;
  transfer.ctx = &ctx;
  transfer.max_header_bytes = impl_->options.max_header_bytes;
  std::array<char, CURL_ERROR_SIZE> error_buffer{};
  if (auto status = impl_->configure(easy.get(), request, url, transfer, headers.get(), pins.get(),
                                     error_buffer.data());
      !status) {
    return status.error();
  }

  CURLcode code = curl_easy_perform(easy.get());
  // The Authorization header lived in `headers`; wipe curl's pointer to it before reuse.
  curl_easy_setopt(easy.get(), CURLOPT_HTTPHEADER, nullptr);
  curl_easy_setopt(easy.get(), CURLOPT_RESOLVE, nullptr);
  impl_->release(std::move(easy));

  if (transfer.callback_error)
    return transfer.callback_error->context(what);
  if (code != CURLE_OK) {
    std::string detail = error_buffer.data();
    if (code == CURLE_OPERATION_TIMEDOUT) {
      // curl says which rule fired ("Operation too slow. Less than N bytes/sec transferred the
      // last S seconds", "Operation timed out after N milliseconds", "Connection timed out");
      // name the setting too.
      const auto& o = impl_->options;
      if (detail.find("too slow") != std::string::npos) {
        detail = "less than " + std::to_string(o.min_rate) + " bytes/s over the last " +
                 std::to_string(o.stall_timeout.count()) +
                 " s (stalled or dribbling transfer; minTransferRateBytesPerSecond, "
                 "stallTimeoutSeconds)";
      } else if (!request.on_body && detail.find("Connection") == std::string::npos) {
        detail = "no complete answer within " + std::to_string(o.document_timeout.count() / 1000) +
                 " s (documentTimeoutSeconds): " + detail;
      }
    }
    if (code == CURLE_OUT_OF_MEMORY && !transfer.head_delivered) {
      // curl keeps a response header line in a buffer capped at CURL_MAX_HTTP_HEADER (100 KiB)
      // and reports a longer one as "out of memory" without a message: the peer's doing.
      detail = "a response header line longer than curl's " + std::to_string(CURL_MAX_HTTP_HEADER) +
               "-byte limit (our cap on all headers: " + std::to_string(transfer.max_header_bytes) +
               " bytes)";
    }
    return curlError(code, what + " (" + url.host + " at " + tried + ")", detail);
  }
  if (!transfer.head_delivered) {
    if (auto status = transfer.deliverHead(); !status)
      return status.error().context(what);
  }
  return std::move(transfer.response);
}

std::string curlVersion() {
  const curl_version_info_data* info = curl_version_info(CURLVERSION_NOW);
  std::string text = info->version;
  if (info->ssl_version != nullptr)
    text += std::string(" (") + info->ssl_version + ")";
  return text;
}

}  // namespace pullagent::puller
