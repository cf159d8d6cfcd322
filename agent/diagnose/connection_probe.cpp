#include "agent/diagnose/connection_probe.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <memory>

#include "puller/trust/openssl_handles.h"

namespace pullagent::agent {
namespace {

using SslCtxPtr = std::unique_ptr<SSL_CTX, puller::OpenSslFree<SSL_CTX_free>>;
using SslPtr = std::unique_ptr<SSL, puller::OpenSslFree<SSL_free>>;

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
                       "bind to interface " + name + ": " + std::strerror(errno), errno);
    }
    return {};
  }
  std::string address = bind_to.rfind("host!", 0) == 0 ? bind_to.substr(5) : bind_to;
  sockaddr_storage local{};
  socklen_t size = 0;
  if (!socketAddress(address, 0, local, size) || local.ss_family != family)
    return {};  // another family than the destination's: the kernel picks the source
  if (::bind(fd, reinterpret_cast<sockaddr*>(&local), size) != 0) {
    return makeError(ErrorCode::kUnavailable,
                     "bind to source address " + address + ": " + std::strerror(errno), errno);
  }
  return {};
}

// One non-blocking connect, waited for within `timeout`.
Result<UniqueFd> connectOne(const std::string& address, int port, std::chrono::milliseconds timeout,
                            const std::optional<std::string>& bind_to) {
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
  pollfd ready{fd.get(), POLLOUT, 0};
  int polled = ::poll(&ready, 1, static_cast<int>(timeout.count()));
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
  // Blocking from here on, bounded by socket timeouts: the handshake that follows is simple.
  ::fcntl(fd.get(), F_SETFL, ::fcntl(fd.get(), F_GETFL) & ~O_NONBLOCK);
  timeval limit{static_cast<time_t>(timeout.count() / 1000),
                static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
  return fd;
}

std::string nameOf(const X509_NAME* name) {
  std::unique_ptr<BIO, puller::OpenSslFree<BIO_free>> bio(BIO_new(BIO_s_mem()));
  X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253);
  char* data = nullptr;
  long length = BIO_get_mem_data(bio.get(), &data);
  return length > 0 ? std::string(data, static_cast<size_t>(length)) : "";
}

std::vector<std::string> altNames(X509* leaf) {
  std::vector<std::string> names;
  auto* sans =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(leaf, NID_subject_alt_name, nullptr, nullptr));
  if (sans == nullptr)
    return names;
  for (int i = 0; i < sk_GENERAL_NAME_num(sans); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(sans, i);
    if (name->type == GEN_DNS) {
      const auto* text = name->d.dNSName;
      names.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(text)),
                         static_cast<size_t>(ASN1_STRING_length(text)));
    } else if (name->type == GEN_IPADD) {
      const auto* raw = name->d.iPAddress;
      std::array<char, INET6_ADDRSTRLEN> text{};
      const int family = ASN1_STRING_length(raw) == 4 ? AF_INET : AF_INET6;
      if (::inet_ntop(family, ASN1_STRING_get0_data(raw), text.data(), text.size()) != nullptr)
        names.emplace_back(text.data());
    }
  }
  GENERAL_NAMES_free(sans);
  return names;
}

}  // namespace

Result<TcpConnection> connectFirst(const std::vector<std::string>& addresses, int port,
                                   std::chrono::milliseconds timeout,
                                   const std::optional<std::string>& bind_to, const Context& ctx) {
  TcpConnection connection;
  std::optional<Error> last;
  for (const auto& address : addresses) {
    RETURN_IF_ERROR(ctx.check());
    auto fd = connectOne(address, port, timeout, bind_to);
    if (fd) {
      connection.fd = std::move(fd.value());
      connection.address = address;
      return connection;
    }
    connection.refused.push_back(address + ": " + fd.error().message);
    last = fd.error();
  }
  std::string tried;
  for (const auto& entry : connection.refused)
    tried += (tried.empty() ? "" : "; ") + entry;
  return makeError(last ? last->code : ErrorCode::kUnavailable,
                   "TCP connect to port " + std::to_string(port) + " failed at every address (" +
                       (tried.empty() ? "no address" : tried) + ")");
}

Result<TlsFacts> probeTls(int fd, const std::string& host,
                          const std::optional<std::string>& extra_ca_file,
                          std::chrono::milliseconds timeout) {
  puller::OpenSslErrorMark mark;
  SslCtxPtr context(SSL_CTX_new(TLS_client_method()));
  if (!context)
    return makeError(ErrorCode::kInternal, "TLS: cannot create a context");
  SSL_CTX_set_min_proto_version(context.get(), TLS1_2_VERSION);
  TlsFacts facts;
  facts.trust = "the system CAs";
  SSL_CTX_set_default_verify_paths(context.get());
  if (extra_ca_file) {
    if (SSL_CTX_load_verify_locations(context.get(), extra_ca_file->c_str(), nullptr) != 1) {
      return makeError(ErrorCode::kInvalidArgument,
                       "TLS: the CA bundle " + *extra_ca_file + " cannot be read");
    }
    facts.trust += " and caBundle " + *extra_ca_file;
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
  if (!numeric)
    SSL_ctrl(ssl.get(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
             const_cast<char*>(host.c_str()));
  SSL_set_fd(ssl.get(), fd);
  if (SSL_connect(ssl.get()) != 1) {
    const unsigned long reason = ERR_peek_last_error();
    std::string why = reason != 0 ? ERR_reason_error_string(reason) != nullptr
                                        ? ERR_reason_error_string(reason)
                                        : "unknown reason"
                                  : "the connection closed (or no answer within " +
                                        std::to_string(timeout.count()) + " ms)";
    return makeError(ErrorCode::kUntrusted, "TLS handshake failed: " + why);
  }
  facts.protocol = SSL_get_version(ssl.get());
  std::unique_ptr<X509, puller::OpenSslFree<X509_free>> leaf(SSL_get1_peer_certificate(ssl.get()));
  if (!leaf)
    return makeError(ErrorCode::kUntrusted, "TLS: the server sent no certificate");
  if (STACK_OF(X509)* chain = SSL_get_peer_cert_chain(ssl.get()); chain != nullptr) {
    for (int i = 0; i < sk_X509_num(chain); ++i)
      facts.chain.push_back(nameOf(X509_get_subject_name(sk_X509_value(chain, i))));
  }
  facts.issuer = nameOf(X509_get_issuer_name(leaf.get()));
  facts.names = altNames(leaf.get());
  tm not_after{};
  if (ASN1_TIME_to_tm(X509_get0_notAfter(leaf.get()), &not_after) == 1)
    facts.not_after = std::chrono::system_clock::from_time_t(timegm(&not_after));
  facts.name_matches =
      numeric ? X509_check_ip_asc(leaf.get(), host.c_str(), 0) == 1
              : X509_check_host(leaf.get(), host.c_str(), host.size(), 0, nullptr) == 1;
  facts.verify_code = SSL_get_verify_result(ssl.get());
  facts.expired = facts.verify_code == X509_V_ERR_CERT_HAS_EXPIRED;
  if (facts.verify_code != X509_V_OK)
    facts.verify_error = X509_verify_cert_error_string(facts.verify_code);
  SSL_shutdown(ssl.get());
  return facts;
}

}  // namespace pullagent::agent
