#include "agent/daemon/push_event.h"

#include "base/json_reader.h"

namespace pullagent::agent {

Result<std::optional<PushEvent>> parseAcrWebhook(std::string_view body) {
  ASSIGN_OR_RETURN(auto doc, parseJson(body, "ACR webhook", ErrorCode::kInvalidArgument));
  JsonReader event(doc, "ACR webhook", ErrorCode::kInvalidArgument);
  if (!event.isObject())
    return event.typeError("an object");
  // The Result itself, not ASSIGN_OR_RETURN: GCC 12 at -O3 takes the moved-out string for
  // uninitialised (-Wmaybe-uninitialized) when it is compared at once.
  const Result<std::string> action = event["action"].string();
  if (!action)
    return action.error();
  if (action.value() != "push")
    return std::optional<PushEvent>();
  ASSIGN_OR_RETURN(auto repository, event["target"]["repository"].string());
  ASSIGN_OR_RETURN(auto tag, event["target"]["tag"].optionalString());
  ASSIGN_OR_RETURN(auto host, event["request"]["host"].string());
  if (!tag || tag->empty())
    return std::optional<PushEvent>();  // pushed by digest only: no site follows it
  return std::optional<PushEvent>(PushEvent{host, repository, *tag});
}

Result<std::optional<PushEvent>> parseDockerHubWebhook(std::string_view body) {
  ASSIGN_OR_RETURN(auto doc, parseJson(body, "Docker Hub webhook", ErrorCode::kInvalidArgument));
  JsonReader event(doc, "Docker Hub webhook", ErrorCode::kInvalidArgument);
  if (!event.isObject())
    return event.typeError("an object");
  ASSIGN_OR_RETURN(auto tag, event["push_data"]["tag"].optionalString());
  ASSIGN_OR_RETURN(auto repository, event["repository"]["repo_name"].string());
  if (!tag || tag->empty())
    return std::optional<PushEvent>();
  // Official images are "library/<name>" in the registry API, plain "<name>" on Docker Hub.
  if (repository.find('/') == std::string::npos)
    repository = "library/" + repository;
  return std::optional<PushEvent>(PushEvent{"docker.io", repository, *tag});
}

}  // namespace pullagent::agent
