// Site files (a tenant's configuration), the agent config and state files read back from disk.
// No error text may carry the registry password planted in the seeds ("s3cr3t-PW").
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "agent/config/agent_config.h"
#include "agent/config/site_config.h"
#include "agent/daemon/site_state.h"

namespace {

void mustNotLeak(const pullagent::Error& error) {
  if (error.message.find("s3cr3t-PW") != std::string::npos)
    __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace pullagent::agent;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto site = parseSiteConfig(text); !site)
    mustNotLeak(site.error());
  (void)parseAgentConfig(text, {{"IDENTITY_HEADER", "h"}});
  if (auto state = parseSiteState(text))
    (void)parseSiteState(siteStateJson(state.value()));
  return 0;
}
