#include "agent/cli/version_command.h"

#include <cstdio>
#include <string>

#include "base/version.h"
#include "puller/http/curl_http_client.h"
#include "puller/oci/sha256.h"
#include "puller/unpack/layer_applier.h"
#include "puller/unpack/layer_stream.h"
#include "resolver/ares_resolver.h"

namespace pullagent::agent {

void printVersion() {
  const std::string version(pullagentVersion());
  const std::string revision(pullagentRevision());
  std::printf("pullagent %s (git %s)\n", version.c_str(), revision.c_str());
  std::printf("  libcurl     %s\n", puller::curlVersion().c_str());
  std::printf("  OpenSSL     %s\n", puller::opensslVersion().c_str());
  std::printf("  c-ares      %s\n", resolver::caresVersion().c_str());
  std::printf("  libarchive  %s\n", puller::libarchiveVersion().c_str());
  std::printf("  inflate     %s\n", puller::decompressorVersions().c_str());
}

namespace {

constexpr const char* kVersionUsage = R"(usage: pullagent --version

Prints this build's version and git revision, then the versions of the libraries that do the
work as they report themselves at run time (a distribution update changes them without a
rebuild of pullagent).
)";

int runVersion(const ParsedArgs& /*args*/, const ProcessEnvironment& /*env*/,
               const Environment& /*environment*/) {
  printVersion();
  return 0;
}

}  // namespace

const Command& versionCommand() {
  static const Command command{"--version",
                               "",
                               "this build and the libraries it runs with",
                               kVersionUsage,
                               {},
                               {},
                               0,
                               0,
                               {},
                               true,
                               runVersion};
  return command;
}

}  // namespace pullagent::agent
