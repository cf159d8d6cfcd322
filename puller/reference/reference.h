#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "base/error.h"
#include "puller/oci/digest.h"

namespace pullagent::puller {

// An image reference normalised with Docker's rules (distribution/reference normalize.go):
// "ubuntu" -> docker.io/library/ubuntu:latest, "host:5000/a/b@sha256:..." kept as given.
struct ImageRef {
  std::string domain;      // "docker.io", "myreg.azurecr.io", "127.0.0.1:5000"
  std::string repository;  // "library/ubuntu", "privatewebsite"
  std::optional<std::string> tag;
  std::optional<Digest> digest;

  static Result<ImageRef> parse(std::string_view text);

  // The host[:port] the registry API is served on (docker.io -> registry-1.docker.io).
  std::string apiHost() const;
  // The tag or digest as it goes into /v2/<repo>/manifests/<reference>; digest wins.
  std::string manifestReference() const;
  // "docker.io/library/ubuntu:latest" (with "@sha256:..." when pinned).
  std::string str() const;
  // "repository:<repo>:pull"
  std::string pullScope() const;
};

// The grammar's parts, for names that arrive on their own rather than in a whole reference (the
// sources in a provenance record): what ImageRef::parse accepts as `domain` (host[:port]) and as
// `repository` (path components joined by '/').
bool isValidRegistryDomain(std::string_view domain);
bool isValidRepositoryName(std::string_view repository);

}  // namespace pullagent::puller
