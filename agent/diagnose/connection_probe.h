#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/context.h"
#include "base/error.h"
#include "base/unique_fd.h"

namespace pullagent::agent {

// A TCP connection to the first of `addresses` that accepts one, as curl tries them.
struct TcpConnection {
  UniqueFd fd;                      // non-blocking
  std::string address;              // the one that answered
  std::vector<std::string> failed;  // "10.0.0.7: connection refused", in the order tried
};

// Connects to `port` at each address in turn, each within `timeout` and all within `ctx`, from
// `bind_to` when set (curl's CURLOPT_INTERFACE forms "host!ADDRESS" and "if!NAME": the VNet's
// source address or interface; a source curl could not bind to is an error here too). The
// error names every address tried and why it failed.
Result<TcpConnection> connectFirst(const std::vector<std::string>& addresses, int port,
                                   std::chrono::milliseconds timeout,
                                   const std::optional<std::string>& bind_to, const Context& ctx);

// What a TLS handshake showed of the server, whether or not it is to be trusted. Every text
// comes from the server and is escaped for output.
struct TlsFacts {
  std::string protocol;            // "TLSv1.3"
  std::vector<std::string> chain;  // the subjects the server sent, leaf first
  std::string issuer;              // the leaf's issuer
  std::vector<std::string> names;  // the leaf's subjectAltName DNS names and IP addresses
  std::chrono::system_clock::time_point not_after;  // the leaf's
  bool name_matches = false;  // the leaf names the host asked for (no partial wildcards)
  bool expired = false;       // the chain's verification ended on an expired certificate
  long verify_code = 0;       // X509_V_OK, or why the chain is not trusted
  std::string verify_error;   // X509_verify_cert_error_string, "" when trusted
  std::string trust;          // "the system CAs and caBundle /etc/...": what was trusted
};

// A TLS handshake on the non-blocking `fd` with SNI `host`, the chain checked against the
// system CAs and the options' CA files as curl checks it, within the options' timeout and
// `ctx`. A handshake that fails is an error (kUntrusted when the server's TLS is at fault,
// kTimeout or kUnavailable when the connection is); an untrusted chain or a name mismatch is
// reported in the facts, for the caller to judge.
struct TlsProbeOptions {
  std::vector<std::string> ca_files;  // trusted besides the system CAs
  std::string trust_said;             // where they came from: "caBundle /etc/ca.pem"
  // A client certificate and its key (hosts.toml `client`), presented when asked for; an empty
  // key: the key is in the certificate's file.
  std::optional<std::pair<std::string, std::string>> client_certificate;
  std::chrono::milliseconds timeout{15000};
};
Result<TlsFacts> probeTls(int fd, const std::string& host, const TlsProbeOptions& options,
                          const Context& ctx);

}  // namespace pullagent::agent
