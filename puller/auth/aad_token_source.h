#pragma once

#include <chrono>
#include <string>

#include "base/context.h"
#include "base/error.h"
#include "base/secret.h"

namespace pullagent::puller {

struct AadToken {
  Secret token;
  std::chrono::system_clock::time_point expires_on;
};

// Where AAD access tokens come from: implemented by the agent's managed identity (IMDS or the
// App Service identity endpoint). The puller only asks for a token for a resource.
class AadTokenSource {
 public:
  virtual ~AadTokenSource() = default;
  virtual Result<AadToken> token(const std::string& resource, const Context& ctx) = 0;
  // "user-assigned identity 1111...", for messages a user can act on.
  virtual std::string identityName() const = 0;
};

}  // namespace pullagent::puller
