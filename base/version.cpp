#include "base/version.h"

#include "pullagent_version_info.h"  // generated into the build tree

namespace pullagent {

std::string_view pullagentVersion() {
  return PULLAGENT_VERSION_TEXT;
}

std::string_view pullagentRevision() {
  return PULLAGENT_REVISION_TEXT;
}

std::string userAgent() {
  return "pullagent/" + std::string(pullagentVersion());
}

}  // namespace pullagent
