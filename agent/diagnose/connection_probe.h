#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "base/context.h"
#include "base/error.h"
#include "base/unique_fd.h"

namespace pullagent::agent {

// A TCP connection to the first of `addresses` that accepts one, as curl tries them.
struct TcpConnection {
  UniqueFd fd;
  std::string address;               // the one that answered
  std::vector<std::string> refused;  // "10.0.0.7: connection refused", in the order tried
};

// Connects to `port` at each address in turn, each within `timeout` (bounded by `ctx`), from
// `bind_to` when set (curl's CURLOPT_INTERFACE forms "host!ADDRESS" and "if!NAME": the VNet's
// source address or interface). The error names every address tried and why it failed.
Result<TcpConnection> connectFirst(const std::vector<std::string>& addresses, int port,
                                   std::chrono::milliseconds timeout,
                                   const std::optional<std::string>& bind_to, const Context& ctx);

// What a TLS handshake showed of the server, whether or not it is to be trusted.
struct TlsFacts {
  std::string protocol;            // "TLSv1.3"
  std::vector<std::string> chain;  // the subjects the server sent, leaf first
  std::string issuer;              // the leaf's issuer
  std::vector<std::string> names;  // the leaf's subjectAltName DNS names and IP addresses
  std::chrono::system_clock::time_point not_after;
  bool name_matches = false;  // the leaf names the host asked for
  bool expired = false;       // the chain's verification ended on an expired certificate
  long verify_code = 0;       // X509_V_OK, or why the chain is not trusted
  std::string verify_error;   // X509_verify_cert_error_string, "" when trusted
  std::string trust;          // "the system CAs and caBundle /etc/...": what was trusted
};

// A TLS handshake on `fd` with SNI `host`, the chain checked against the system CAs and
// `extra_ca_file` as curl checks it, within `timeout`. Only a failed handshake is an error: an
// untrusted chain or a name mismatch is reported in the facts, for the caller to judge.
Result<TlsFacts> probeTls(int fd, const std::string& host,
                          const std::optional<std::string>& extra_ca_file,
                          std::chrono::milliseconds timeout);

}  // namespace pullagent::agent
