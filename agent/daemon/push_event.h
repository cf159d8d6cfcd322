#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "base/error.h"

namespace pullagent::agent {

// A registry's notice that an image was pushed: what continuous deployment reacts to.
struct PushEvent {
  std::string host;        // the registry's login server ("myreg.azurecr.io", "docker.io")
  std::string repository;  // "privatewebsite", "library/nginx"
  std::string tag;
};

// An Azure Container Registry webhook body ({"action": "push", "target": {"repository", "tag",
// "digest", ...}, "request": {"host", ...}}). Nothing for other actions (ping, delete, ...) or
// a push without a tag; an error for a body that is not that shape.
Result<std::optional<PushEvent>> parseAcrWebhook(std::string_view body);

// A Docker Hub webhook body ({"push_data": {"tag"}, "repository": {"repo_name"}}).
Result<std::optional<PushEvent>> parseDockerHubWebhook(std::string_view body);

}  // namespace pullagent::agent
