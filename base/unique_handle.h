#pragma once

#include <memory>

namespace pullagent {

// A unique_ptr for a C handle with a free function, e.g.
//   using CurlEasy = UniqueHandle<CURL, curl_easy_cleanup>;
template <auto Deleter>
struct HandleDeleter {
  template <typename T>
  void operator()(T* handle) const noexcept {
    if (handle != nullptr)
      Deleter(handle);
  }
};

template <typename T, auto Deleter>
using UniqueHandle = std::unique_ptr<T, HandleDeleter<Deleter>>;

}  // namespace pullagent
