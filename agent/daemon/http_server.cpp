#include "agent/daemon/http_server.h"

#include <microhttpd.h>
#include <spdlog/spdlog.h>

#include <cctype>
#include <charconv>
#include <cstdarg>
#include <cstdio>

#include "agent/daemon/listen_address.h"
#include "base/redact.h"

namespace pullagent::agent {
namespace {

// What MHD keeps for one request between the calls of the access handler.
struct PendingRequest {
  ServerRequest request;
};

std::string lowercase(std::string text) {
  for (char& c : text)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

MHD_Result collectHeader(void* cls, MHD_ValueKind, const char* key, const char* value) {
  if (key != nullptr) {
    static_cast<std::map<std::string, std::string>*>(cls)->emplace(lowercase(key),
                                                                   value != nullptr ? value : "");
  }
  return MHD_YES;
}

MHD_Result collectArgument(void* cls, MHD_ValueKind, const char* key, const char* value) {
  if (key != nullptr) {
    static_cast<std::map<std::string, std::string>*>(cls)->emplace(key,
                                                                   value != nullptr ? value : "");
  }
  return MHD_YES;
}

MHD_Result queue(MHD_Connection* connection, const ServerResponse& answer) {
  MHD_Response* response = MHD_create_response_from_buffer(
      answer.body.size(), const_cast<char*>(answer.body.data()), MHD_RESPMEM_MUST_COPY);
  if (response == nullptr)
    return MHD_NO;  // out of memory: MHD closes the connection
  MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, answer.content_type.c_str());
  const MHD_Result queued = MHD_queue_response(connection, answer.status, response);
  MHD_destroy_response(response);
  return queued;
}

std::optional<size_t> declaredLength(const std::map<std::string, std::string>& headers) {
  auto found = headers.find("content-length");
  if (found == headers.end())
    return std::nullopt;
  size_t length = 0;
  const std::string& text = found->second;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), length);
  if (error != std::errc() || end != text.data() + text.size())
    return SIZE_MAX;  // MHD itself refuses a malformed length; treat it as too large here
  return length;
}

}  // namespace

struct HttpServer::Impl {
  std::string what;
  std::string bound;
  std::string unix_path;
  Handler handler;
  HttpServerLimits limits;
  // Taken on the thread that starts the server, before MHD's threads exist: they log through
  // it without touching spdlog's registry (whose lazy creation they would otherwise race on).
  std::shared_ptr<spdlog::logger> logger;
  MHD_Daemon* daemon = nullptr;

  // MHD calls this for every request: first when the headers are in, then once per piece of
  // the body, then once more when the body is complete. Nothing thrown may reach MHD's C code.
  static MHD_Result onRequest(void* cls, MHD_Connection* connection, const char* url,
                              const char* method, const char* /*version*/, const char* upload_data,
                              size_t* upload_data_size, void** con_cls) {
    auto* impl = static_cast<Impl*>(cls);
    try {
      return impl->advance(connection, url, method, upload_data, upload_data_size, con_cls);
    } catch (...) {
      return MHD_NO;  // out of memory, most likely: MHD closes the connection
    }
  }

  MHD_Result advance(MHD_Connection* connection, const char* url, const char* method,
                     const char* upload_data, size_t* upload_data_size, void** con_cls) {
    auto* pending = static_cast<PendingRequest*>(*con_cls);
    if (pending == nullptr) {
      pending = new PendingRequest;
      *con_cls = pending;
      pending->request.method = method;
      pending->request.path = url;
      MHD_get_connection_values(connection, MHD_HEADER_KIND, &collectHeader,
                                &pending->request.headers);
      MHD_get_connection_values(connection, MHD_GET_ARGUMENT_KIND, &collectArgument,
                                &pending->request.query);
      auto length = declaredLength(pending->request.headers);
      if (length && *length > limits.body_bytes)
        return queue(connection, {413, "text/plain; charset=utf-8", "request body too large\n"});
      return MHD_YES;
    }
    if (*upload_data_size != 0) {
      // A chunked body has no declared length: it is cut off here instead.
      if (pending->request.body.size() + *upload_data_size > limits.body_bytes)
        return MHD_NO;
      pending->request.body.append(upload_data, *upload_data_size);
      *upload_data_size = 0;
      return MHD_YES;
    }
    ServerResponse answer;
    try {
      answer = handler(pending->request);
    } catch (const std::exception& e) {
      logger->error("{}: {} {} failed: {}", what, safeEscaped(pending->request.method),
                    safeEscaped(pending->request.path), e.what());
      answer = {500, "text/plain; charset=utf-8", "internal error\n"};
    }
    return queue(connection, answer);
  }

  static void onCompleted(void*, MHD_Connection*, void** con_cls, MHD_RequestTerminationCode) {
    delete static_cast<PendingRequest*>(*con_cls);
    *con_cls = nullptr;
  }

  // MHD's own messages (a connection refused at the cap, a malformed request): they come from
  // clients, so they are escaped and kept at debug level where a flood cannot fill the journal.
  static void onLog(void* cls, const char* format, va_list args) {
    char text[512];
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    std::vsnprintf(text, sizeof text, format, args);
#pragma GCC diagnostic pop
    auto* impl = static_cast<Impl*>(cls);
    impl->logger->debug("{}: {}", impl->what, safeEscaped(text));
  }
};

Result<std::unique_ptr<HttpServer>> HttpServer::start(const std::string& address,
                                                      const std::string& what, Handler handler,
                                                      HttpServerLimits limits,
                                                      std::optional<mode_t> unix_mode) {
  ASSIGN_OR_RETURN(auto listener, listenOn(address, what, unix_mode));
  auto impl = std::make_unique<Impl>();
  impl->what = what;
  impl->bound = listener.bound;
  impl->unix_path = listener.unix_path;
  impl->handler = std::move(handler);
  impl->limits = limits;
  impl->logger = spdlog::default_logger();
  const unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
  // One option and its arguments per line; the logger first, so that MHD never writes to stderr
  // on its own.
  // clang-format off
  impl->daemon = MHD_start_daemon(
      flags, 0, nullptr, nullptr, &Impl::onRequest, impl.get(),
      MHD_OPTION_EXTERNAL_LOGGER, &Impl::onLog, impl.get(),
      MHD_OPTION_LISTEN_SOCKET, static_cast<MHD_socket>(listener.fd.get()),
      MHD_OPTION_THREAD_POOL_SIZE, static_cast<unsigned>(limits.threads),
      MHD_OPTION_CONNECTION_LIMIT, static_cast<unsigned>(limits.connections),
      MHD_OPTION_CONNECTION_TIMEOUT, static_cast<unsigned>(limits.idle_timeout.count()),
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, static_cast<size_t>(limits.header_bytes),
      MHD_OPTION_NOTIFY_COMPLETED, &Impl::onCompleted, impl.get(),
      MHD_OPTION_END);
  // clang-format on
  if (impl->daemon == nullptr) {
    if (!impl->unix_path.empty())
      ::unlink(impl->unix_path.c_str());
    return makeError(ErrorCode::kInternal, what + " " + address + ": cannot start the HTTP server");
  }
  // MHD owns the listening socket now and closes it when it stops.
  (void)listener.fd.release();
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpServer::~HttpServer() {
  MHD_stop_daemon(impl_->daemon);
  if (!impl_->unix_path.empty())
    ::unlink(impl_->unix_path.c_str());
}

const std::string& HttpServer::address() const {
  return impl_->bound;
}

}  // namespace pullagent::agent
