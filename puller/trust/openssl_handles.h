#pragma once

#include <openssl/err.h>

namespace pullagent::puller {

// Whatever OpenSSL queues while a scope parses or verifies is the scope's, dropped on the way
// out: nothing else may read it later (a TLS handshake on the same thread would take it for
// its own).
class OpenSslErrorMark {
 public:
  OpenSslErrorMark() { ERR_set_mark(); }
  ~OpenSslErrorMark() { ERR_pop_to_mark(); }
  OpenSslErrorMark(const OpenSslErrorMark&) = delete;
  OpenSslErrorMark& operator=(const OpenSslErrorMark&) = delete;
};

// A std::unique_ptr deleter calling OpenSSL's `Free` for its object type.
template <auto Free>
struct OpenSslFree {
  template <typename T>
  void operator()(T* pointer) const {
    Free(pointer);
  }
};

}  // namespace pullagent::puller
