#pragma once

#include <string>
#include <string_view>

namespace pullagent {

// A URL fit for logs and errors: user info dropped, every query value replaced by "REDACTED"
// (blob-storage SAS signatures, tokens), fragment dropped. Parameter names are kept because
// they help debugging.
std::string redactUrl(std::string_view url);

// The value of a header fit for logs: only allow-listed headers keep their value.
std::string redactHeader(std::string_view name, std::string_view value);

}  // namespace pullagent
