// Site files (a tenant's configuration), the agent config and state files read back from disk.
// Oracle beyond "no crash": an error never repeats the registry password of the site file. Every
// DOCKER_REGISTRY_SERVER_PASSWORD value (as {name, value} or as a member) and every sitecontainer's
// passwordSecret is replaced by a marker
// and the document parsed again: the marker must not appear in the error.
#include <algorithm>
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "agent/config/agent_config.h"
#include "agent/config/site_config.h"
#include "agent/site/site_state.h"
#include "base/json_reader.h"

namespace {

using nlohmann::json;

bool isPasswordName(std::string name) {
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  return name == "DOCKER_REGISTRY_SERVER_PASSWORD" || name == "PASSWORDSECRET";
}

constexpr const char* kMarker = "pw-MARKER-7q";

// Replaces every password value in the document by kMarker, without recursion; how many.
int markPasswords(json& doc) {
  int marked = 0;
  std::vector<json*> pending{&doc};
  while (!pending.empty()) {
    json* value = pending.back();
    pending.pop_back();
    if (value->is_object()) {
      auto name = value->find("name");
      auto setting = value->find("value");
      if (name != value->end() && name->is_string() && setting != value->end() &&
          setting->is_string() && isPasswordName(name->get<std::string>())) {
        *setting = kMarker;
        ++marked;
      }
      for (auto it = value->begin(); it != value->end(); ++it) {
        if (isPasswordName(it.key()) && it->is_string()) {
          *it = kMarker;
          ++marked;
        }
        pending.push_back(&*it);
      }
    } else if (value->is_array()) {
      for (auto& item : *value)
        pending.push_back(&item);
    }
  }
  return marked;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace pullagent::agent;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)parseSiteConfig(text);
  // An input that holds the marker already (the fuzzer learns it) would have it quoted from
  // another field, which is no password: only inputs without it can tell.
  if (auto doc = pullagent::parseJson(text, "fuzz input");
      doc && text.find(kMarker) == std::string_view::npos && markPasswords(doc.value()) > 0) {
    const std::string marked = doc->dump(-1, ' ', false, json::error_handler_t::replace);
    if (auto site = parseSiteConfig(marked);
        !site && site.error().message.find(kMarker) != std::string::npos) {
      __builtin_trap();
    }
  }
  (void)parseAgentConfig(text, {{"IDENTITY_HEADER", "h"}});
  if (auto state = parseSiteState(text))
    (void)parseSiteState(siteStateJson(state.value()));
  return 0;
}
