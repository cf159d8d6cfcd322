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

// Outside text (a tenant's image reference, a registry's message, a file name inside a layer)
// quoted for a log line or an error: control characters, escape sequences and invalid UTF-8
// become \n, \xNN ..., and anything past `max` bytes is cut ("...(N bytes)"), so that no value
// can forge log lines, drive a terminal or fill the log.
std::string safeQuoted(std::string_view text, size_t max = 120);
// The same without the surrounding quotes.
std::string safeEscaped(std::string_view text, size_t max = 120);

}  // namespace pullagent
