#pragma once

#include <filesystem>
#include <string>

#include "puller/oci/manifest.h"

namespace pullagent::testing {

// tests/support/estargz.py's sample layer, checked in under tests/puller/lazy/data: etc/,
// etc/hosts before the prefetch landmark, bin/, bin/big (2500 bytes in chunks of 1000), bin/sh
// -> big, bin/big2 a hardlink to bin/big. The stack serves it as test/estargz:v1.
//
// `marked` names the other layer there: usr/bin/ping with the xattrs security.capability and
// user.note="kept", and var/cache/ made opaque by its whiteout.
struct EstargzSample {
  static std::filesystem::path dir();
  static std::string blob(const std::string& name = "sample");  // <name>.estargz
  // With its TOC digest annotation.
  static puller::Descriptor descriptor(const std::string& name = "sample");
  static std::string big();  // what bin/big holds
  static std::string hosts() { return "127.0.0.1 localhost\n"; }
};

// The errno of a read(2) at the start of `path` (0 when the read succeeded): what a container
// reading a lazy layer's file sees.
int readErrno(const std::filesystem::path& path);

}  // namespace pullagent::testing
