#pragma once

#include <string>
#include <string_view>

namespace pullagent {

// The project version (CMakeLists.txt) and the git commit it was built from ("unknown" outside
// a git checkout, "-modified" with uncommitted changes).
std::string_view pullagentVersion();
std::string_view pullagentRevision();

// What every HTTP request says it is: "pullagent/<version>".
std::string userAgent();

}  // namespace pullagent
