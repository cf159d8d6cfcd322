#include "agent/diagnose/connection_probe.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <memory>

#include "base/redact.h"
#include "puller/trust/openssl_handles.h"

namespace pullagent::agent {
namespace {

using SslCtxPtr = std::unique_ptr<SSL_CTX, puller::OpenSslFree<SSL_CTX_free>>;
using SslPtr = std::unique_ptr<SSL, puller::OpenSslFree<SSL_free>>;
using BioPtr = std::unique_ptr<BIO, puller::OpenSslFree<BIO_free>>;
using X509Ptr = std::unique_ptr<X509, puller::OpenSslFree<X509_free>>;
using steady = std::chrono::steady_clock;

// A socket address for a numeric IPv4 or IPv6 address.
bool socketAddress(const std::string& address, int port, sockaddr_storage& out, socklen_t& size) {
  std::memset(&out, 0, sizeof out);
  auto* v4 = reinterpret_cast<sockaddr_in*>(&out);
  if (::inet_pton(AF_INET, address.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    size = sizeof(sockaddr_in);
    return true;
  }
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&out);
  if (::inet_pton(AF_INET6, address.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    size = sizeof(sockaddr_in6);
    return true;
  }
  return false;
}

// Binds `fd` as curl's CURLOPT_INTERFACE would: "host!ADDRESS" or "if!NAME".
Status bindSource(int fd, int family, const std::string& bind_to) {
  if (bind_to.rfind("if!", 0) == 0) {
    const std::string name = bind_to.substr(3);
    if (::setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, name.c_str(),
                     static_cast<socklen_t>(name.size())) != 0) {
      return makeError(ErrorCode::kUnavailable,
                       "bind to interface " + name + " (vnetBindTo): " + std::strerror(errno),
                       errno);
    }
    return {};
  }
  const std::string address = bind_to.rfind("host!", 0) == 0 ? bind_to.substr(5) : bind_to;
  sockaddr_storage local{};
  socklen_t size = 0;
  if (!socketAddress(address, 0, local, size)) {
    return makeError(ErrorCode::kInvalidArgument,
                     "vnetBindTo " + address + " is not a numeric address");
  }
  if (local.ss_family != family) {
    return makeError(ErrorCode::kUnavailable,
                     "the source address " + address +
                         " (vnetBindTo) is of another address family than the destination");
  }
  if (::bind(fd, reinterpret_cast<sockaddr*>(&local), size) != 0) {
    return makeError(ErrorCode::kUnavailable,
                     "bind to source address " + address + " (vnetBindTo): " + std::strerror(errno),
                     errno);
  }
  return {};
}

// Milliseconds left before the earlier of `until` and the context's deadline.
int msLeft(steady::time_point until, const Context& ctx) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - steady::now());
  if (auto remaining = ctx.remaining())
    left = std::min(left, *remaining);
  return static_cast<int>(std::max<int64_t>(0, left.count()));
}

// One non-blocking connect, waited for within `timeout` and `ctx`.
Result<UniqueFd> connectOne(const std::string& address, int port, std::chrono::milliseconds timeout,
                            const std::optional<std::string>& bind_to, const Context& ctx) {
  sockaddr_storage remote{};
  socklen_t size = 0;
  if (!socketAddress(address, port, remote, size))
    return makeError(ErrorCode::kInvalidArgument, "not a numeric address");
  UniqueFd fd(::socket(remote.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd.valid())
    return makeError(ErrorCode::kInternal, std::string("socket: ") + std::strerror(errno), errno);
  if (bind_to)
    RETURN_IF_ERROR(bindSource(fd.get(), remote.ss_family, *bind_to));
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&remote), size) != 0 &&
      errno != EINPROGRESS) {
    return makeError(ErrorCode::kUnavailable, std::strerror(errno), errno);
  }
  const auto until = steady::now() + timeout;
  pollfd ready{fd.get(), POLLOUT, 0};
  int polled = 0;
  do {
    RETURN_IF_ERROR(ctx.check());
    polled = ::poll(&ready, 1, std::min(msLeft(until, ctx), 100));
  } while (polled == 0 && msLeft(until, ctx) > 0);
  if (polled == 0) {
    return makeError(ErrorCode::kTimeout,
                     "no answer within " + std::to_string(timeout.count()) + " ms");
  }
  int error = 0;
  socklen_t length = sizeof error;
  if (polled < 0 || ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &error, &length) != 0)
    error = errno;
  if (error != 0)
    return makeError(ErrorCode::kUnavailable, std::strerror(error), error);
  return fd;
}

std::string nameOf(const X509_NAME* name) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || name == nullptr)
    return "?";
  X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253);
  char* data = nullptr;
  const long length = BIO_get_mem_data(bio.get(), &data);
  return length > 0 ? safeEscaped(std::string_view(data, static_cast<size_t>(length)), 200) : "";
}

std::vector<std::string> altNames(X509* leaf) {
  std::vector<std::string> names;
  auto* sans =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(leaf, NID_subject_alt_name, nullptr, nullptr));
  if (sans == nullptr)
    return names;
  // A certificate may list thousands: the first few say enough.
  const int count = std::min(sk_GENERAL_NAME_num(sans), 32);
  for (int i = 0; i < count; ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(sans, i);
    if (name->type == GEN_DNS) {
      const auto* text = name->d.dNSName;
      names.push_back(
          safeEscaped(std::string_view(reinterpret_cast<const char*>(ASN1_STRING_get0_data(text)),
                                       static_cast<size_t>(std::max(0, ASN1_STRING_length(text)))),
                      200));
    } else if (name->type == GEN_IPADD) {
      const auto* raw = name->d.iPAddress;
      const int length = ASN1_STRING_length(raw);
      std::array<char, INET6_ADDRSTRLEN> text{};
      if ((length != 4 && length != 16) ||
          ::inet_ntop(length == 4 ? AF_INET : AF_INET6, ASN1_STRING_get0_data(raw), text.data(),
                      text.size()) == nullptr) {
        names.emplace_back("<malformed IP address>");
      } else {
        names.emplace_back(text.data());
      }
    }
  }
  GENERAL_NAMES_free(sans);
  return names;
}

// OpenSSL writes to the socket with write(2): a peer that resets the connection would raise
// SIGPIPE and end the process. Blocked in this thread while the handshake runs, and one it
// raised taken off the thread's pending set.
class SigpipeBlocked {
 public:
  SigpipeBlocked() {
    sigemptyset(&pipe_only_);
    sigaddset(&pipe_only_, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_only_, &previous_);
  }
  ~SigpipeBlocked() {
    const timespec zero{};
    while (sigtimedwait(&pipe_only_, nullptr, &zero) >= 0 || errno == EINTR) {
    }
    pthread_sigmask(SIG_SETMASK, &previous_, nullptr);
  }
  SigpipeBlocked(const SigpipeBlocked&) = delete;
  SigpipeBlocked& operator=(const SigpipeBlocked&) = delete;

 private:
  sigset_t pipe_only_{};
  sigset_t previous_{};
};

// SSL_connect on the non-blocking socket, waited for within `timeout` and `ctx`.
Status handshake(SSL* ssl, int fd, std::chrono::milliseconds timeout, const Context& ctx) {
  const auto until = steady::now() + timeout;
  while (true) {
    ERR_clear_error();
    const int done = SSL_connect(ssl);
    if (done == 1)
      return {};
    const int why = SSL_get_error(ssl, done);
    if (why == SSL_ERROR_WANT_READ || why == SSL_ERROR_WANT_WRITE) {
      RETURN_IF_ERROR(ctx.check());
      const int left = msLeft(until, ctx);
      if (left <= 0) {
        return makeError(ErrorCode::kTimeout, "the TLS handshake did not end within " +
                                                  std::to_string(timeout.count()) + " ms");
      }
      pollfd wait{fd, static_cast<short>(why == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT), 0};
      ::poll(&wait, 1, std::min(left, 100));
      continue;
    }
    const unsigned long reason = ERR_peek_last_error();
    if (why == SSL_ERROR_SSL && reason != 0) {
      const char* text = ERR_reason_error_string(reason);
      return makeError(ErrorCode::kUntrusted,
                       std::string("TLS handshake failed: ") + (text ? text : "unknown reason"));
    }
    return makeError(ErrorCode::kUnavailable,
                     "the connection closed during the TLS handshake (" +
                         std::string(errno != 0 ? std::strerror(errno) : "no reason given") + ")");
  }
}

}  // namespace

Result<TcpConnection> connectFirst(const std::vector<std::string>& addresses, int port,
                                   std::chrono::milliseconds timeout,
                                   const std::optional<std::string>& bind_to, const Context& ctx) {
  TcpConnection connection;
  std::optional<Error> last;
  for (const auto& address : addresses) {
    RETURN_IF_ERROR(ctx.check());
    auto fd = connectOne(address, port, timeout, bind_to, ctx);
    if (fd) {
      connection.fd = std::move(fd.value());
      connection.address = address;
      return connection;
    }
    if (fd.error().code == ErrorCode::kInvalidArgument || fd.error().code == ErrorCode::kCancelled)
      return fd.error();
    connection.failed.push_back(address + ": " + fd.error().message);
    last = fd.error();
  }
  std::string tried;
  for (const auto& entry : connection.failed)
    tried += (tried.empty() ? "" : "; ") + entry;
  return makeError(last ? last->code : ErrorCode::kUnavailable,
                   "TCP connect to port " + std::to_string(port) + " failed at every address (" +
                       (tried.empty() ? "no address" : tried) + ")");
}

Result<TlsFacts> probeTls(int fd, const std::string& host, const TlsProbeOptions& options,
                          const Context& ctx) {
  puller::OpenSslErrorMark mark;
  SigpipeBlocked no_sigpipe;
  SslCtxPtr context(SSL_CTX_new(TLS_client_method()));
  if (!context)
    return makeError(ErrorCode::kInternal, "TLS: cannot create a context");
  SSL_CTX_set_min_proto_version(context.get(), TLS1_2_VERSION);
  TlsFacts facts;
  facts.trust = "the system CAs" + (options.trust_said.empty() ? "" : " and " + options.trust_said);
  SSL_CTX_set_default_verify_paths(context.get());
  for (const auto& file : options.ca_files) {
    if (SSL_CTX_load_verify_locations(context.get(), file.c_str(), nullptr) != 1)
      return makeError(ErrorCode::kInvalidArgument, "TLS: the CA file " + file + " cannot be read");
  }
  if (options.client_certificate) {
    // An encrypted key would have OpenSSL prompt on the terminal: refused instead, as curl
    // without a passphrase does.
    SSL_CTX_set_default_passwd_cb(context.get(), [](char*, int, int, void*) { return 0; });
    const auto& [certificate, key] = *options.client_certificate;
    const std::string& key_file = key.empty() ? certificate : key;
    if (SSL_CTX_use_certificate_chain_file(context.get(), certificate.c_str()) != 1 ||
        SSL_CTX_use_PrivateKey_file(context.get(), key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
      return makeError(ErrorCode::kInvalidArgument,
                       "TLS: the client certificate " + certificate + " or its key cannot be read");
    }
  }
  // The chain is verified (the result is read below) but the handshake goes on either way, so
  // that an untrusted or misnamed certificate can be described.
  SSL_CTX_set_verify(context.get(), SSL_VERIFY_NONE, nullptr);
  SslPtr ssl(SSL_new(context.get()));
  if (!ssl)
    return makeError(ErrorCode::kInternal, "TLS: cannot create a session");
  sockaddr_storage parsed{};
  socklen_t parsed_size = 0;
  const bool numeric = socketAddress(host, 0, parsed, parsed_size);
  // SSL_set_tlsext_host_name is a macro with a C cast inside.
  if (!numeric) {
    SSL_ctrl(ssl.get(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
             const_cast<char*>(host.c_str()));
  }
  SSL_set_fd(ssl.get(), fd);
  RETURN_IF_ERROR(handshake(ssl.get(), fd, options.timeout, ctx));
  facts.protocol = SSL_get_version(ssl.get());
  X509Ptr leaf(SSL_get1_peer_certificate(ssl.get()));
  if (!leaf)
    return makeError(ErrorCode::kUntrusted, "TLS: the server sent no certificate");
  if (STACK_OF(X509)* chain = SSL_get_peer_cert_chain(ssl.get()); chain != nullptr) {
    for (int i = 0; i < std::min(sk_X509_num(chain), 8); ++i)
      facts.chain.push_back(nameOf(X509_get_subject_name(sk_X509_value(chain, i))));
  }
  facts.issuer = nameOf(X509_get_issuer_name(leaf.get()));
  facts.names = altNames(leaf.get());
  tm not_after{};
  if (ASN1_TIME_to_tm(X509_get0_notAfter(leaf.get()), &not_after) == 1)
    facts.not_after = std::chrono::system_clock::from_time_t(timegm(&not_after));
  // As curl checks names: no partial wildcards ("w*.example.com").
  facts.name_matches = numeric
                           ? X509_check_ip_asc(leaf.get(), host.c_str(), 0) == 1
                           : X509_check_host(leaf.get(), host.c_str(), host.size(),
                                             X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS, nullptr) == 1;
  facts.verify_code = SSL_get_verify_result(ssl.get());
  facts.expired = facts.verify_code == X509_V_ERR_CERT_HAS_EXPIRED;
  if (facts.verify_code != X509_V_OK)
    facts.verify_error = X509_verify_cert_error_string(facts.verify_code);
  return facts;
}

}  // namespace pullagent::agent
