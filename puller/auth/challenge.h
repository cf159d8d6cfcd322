#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pullagent::puller {

// One authentication challenge from WWW-Authenticate (RFC 9110 §11.6.1).
struct Challenge {
  std::string scheme;                         // lowercase: "bearer", "basic", ...
  std::map<std::string, std::string> params;  // names lowercase, values unescaped
  std::optional<std::string> token68;         // the rare `Scheme token68=` form

  std::optional<std::string> param(const std::string& name) const;
};

// Parses every challenge from every WWW-Authenticate field value: several challenges in one
// value ("Bearer realm=\"a\", Basic realm=\"b\"") or in several fields, quoted strings with
// backslash escapes, case-insensitive scheme and parameter names. Malformed parts are skipped
// rather than trusted: a challenge that cannot be read is simply not offered.
std::vector<Challenge> parseChallenges(const std::vector<std::string>& field_values);

}  // namespace pullagent::puller
