#include "puller/reference/reference.h"

#include <algorithm>
#include <cctype>

#include "base/redact.h"

namespace pullagent::puller {
namespace {

constexpr size_t kMaxNameLength = 255;

Error invalid(std::string_view text, std::string why) {
  return makeError(ErrorCode::kInvalidArgument,
                   "invalid image reference " + safeQuoted(text) + ": " + std::move(why));
}

bool isLowerAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

// path-component := [a-z0-9]+ ( ( [._] | __ | [-]+ ) [a-z0-9]+ )*
bool isValidPathComponent(std::string_view part) {
  size_t i = 0;
  auto alnumRun = [&] {
    size_t start = i;
    while (i < part.size() && isLowerAlnum(part[i]))
      ++i;
    return i > start;
  };
  if (!alnumRun())
    return false;
  while (i < part.size()) {
    if (part[i] == '.') {
      ++i;
    } else if (part[i] == '_') {
      ++i;
      if (i < part.size() && part[i] == '_')
        ++i;
    } else if (part[i] == '-') {
      while (i < part.size() && part[i] == '-')
        ++i;
    } else {
      return false;
    }
    if (!alnumRun())
      return false;
  }
  return true;
}

// domain := host [':' port]; host is a DNS name, IPv4 or [IPv6].
bool isValidDomain(std::string_view domain) {
  std::string_view host = domain;
  std::string_view port;
  if (!domain.empty() && domain.front() == '[') {
    auto close = domain.find(']');
    if (close == std::string_view::npos)
      return false;
    auto inside = domain.substr(1, close - 1);
    if (inside.empty() ||
        inside.find_first_not_of("0123456789abcdefABCDEF:.") != std::string_view::npos) {
      return false;
    }
    auto rest = domain.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':')
        return false;
      port = rest.substr(1);
      if (port.empty())
        return false;
    }
    host = {};
  } else if (auto colon = domain.rfind(':'); colon != std::string_view::npos) {
    host = domain.substr(0, colon);
    port = domain.substr(colon + 1);
    if (port.empty())
      return false;
  }
  if (!port.empty() && (port.size() > 5 || !std::all_of(port.begin(), port.end(), [](char c) {
                          return std::isdigit(static_cast<unsigned char>(c)) != 0;
                        }))) {
    return false;
  }
  if (!host.empty() || domain.front() != '[') {
    if (host.empty())
      return false;
    size_t start = 0;
    while (start <= host.size()) {
      auto dot = host.find('.', start);
      auto label = host.substr(start, dot == std::string_view::npos ? host.npos : dot - start);
      if (label.empty() || label.front() == '-' || label.back() == '-')
        return false;
      for (char c : label) {
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-')
          return false;
      }
      if (dot == std::string_view::npos)
        break;
      start = dot + 1;
    }
  }
  return true;
}

// tag := [\w][\w.-]{0,127}
bool isValidTag(std::string_view tag) {
  if (tag.empty() || tag.size() > 128)
    return false;
  auto word = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_'; };
  if (!word(tag.front()))
    return false;
  return std::all_of(tag.begin(), tag.end(),
                     [&](char c) { return word(c) || c == '.' || c == '-'; });
}

}  // namespace

bool isValidRegistryDomain(std::string_view domain) {
  return domain.size() <= kMaxNameLength && isValidDomain(domain);
}

bool isValidRepositoryName(std::string_view repository) {
  if (repository.empty() || repository.size() > kMaxNameLength)
    return false;
  size_t start = 0;
  while (true) {
    const size_t slash = repository.find('/', start);
    if (!isValidPathComponent(repository.substr(
            start, slash == std::string_view::npos ? std::string_view::npos : slash - start))) {
      return false;
    }
    if (slash == std::string_view::npos)
      return true;
    start = slash + 1;
  }
}

Result<ImageRef> ImageRef::parse(std::string_view text) {
  if (text.empty())
    return invalid(text, "empty");
  ImageRef ref;
  std::string_view rest = text;

  if (auto at = rest.find('@'); at != std::string_view::npos) {
    auto digest = Digest::parse(rest.substr(at + 1));
    if (!digest)
      return invalid(text, "bad digest: " + digest.error().message);
    ref.digest = digest.value();
    rest = rest.substr(0, at);
  }

  // A tag is the text after the last ':' that follows the last '/' ("host:5000/repo" has none).
  auto last_slash = rest.rfind('/');
  auto last_colon = rest.rfind(':');
  if (last_colon != std::string_view::npos &&
      (last_slash == std::string_view::npos || last_colon > last_slash)) {
    auto tag = rest.substr(last_colon + 1);
    if (!isValidTag(tag)) {
      return invalid(text, "bad tag \"" + std::string(tag) +
                               "\" (letters, digits, '_', '.', '-', at most 128, not starting "
                               "with '.' or '-')");
    }
    ref.tag = std::string(tag);
    rest = rest.substr(0, last_colon);
  }
  if (rest.empty())
    return invalid(text, "no repository name");

  // The first component is a registry host when it has '.', ':', is "localhost", or has
  // uppercase letters (which a repository may not have) - exactly Docker's rule.
  std::string_view remote = rest;
  auto first_slash = rest.find('/');
  if (first_slash != std::string_view::npos) {
    auto first = rest.substr(0, first_slash);
    bool is_domain = first == "localhost" || first.find_first_of(".:") != std::string_view::npos ||
                     std::any_of(first.begin(), first.end(), [](char c) {
                       return std::isupper(static_cast<unsigned char>(c));
                     });
    if (is_domain) {
      if (!isValidDomain(first)) {
        return invalid(text, "bad registry host \"" + std::string(first) + "\"");
      }
      ref.domain = std::string(first);
      remote = rest.substr(first_slash + 1);
    }
  }
  if (ref.domain.empty())
    ref.domain = "docker.io";
  if (ref.domain == "index.docker.io")
    ref.domain = "docker.io";

  if (remote.empty())
    return invalid(text, "no repository name");
  size_t start = 0;
  while (true) {
    auto slash = remote.find('/', start);
    auto part = remote.substr(start, slash == std::string_view::npos ? remote.npos : slash - start);
    if (!isValidPathComponent(part)) {
      bool has_upper = std::any_of(part.begin(), part.end(), [](char c) {
        return std::isupper(static_cast<unsigned char>(c));
      });
      return invalid(text, has_upper
                               ? "repository name \"" + std::string(remote) + "\" must be lowercase"
                               : "bad repository path component \"" + std::string(part) + "\"");
    }
    if (slash == std::string_view::npos)
      break;
    start = slash + 1;
  }
  // distribution/reference: a bare 64-hex name is an image ID, never a repository.
  if (remote.size() == 64 &&
      remote.find_first_not_of("0123456789abcdef") == std::string_view::npos) {
    return invalid(text, "a 64-hex-digit name is an image ID, not a repository");
  }
  ref.repository = std::string(remote);
  if (ref.domain == "docker.io" && ref.repository.find('/') == std::string::npos) {
    ref.repository = "library/" + ref.repository;
  }
  if (ref.domain.size() + 1 + ref.repository.size() > kMaxNameLength) {
    return invalid(text, "name longer than 255 characters");
  }
  if (!ref.tag && !ref.digest)
    ref.tag = "latest";
  return ref;
}

std::string ImageRef::apiHost() const {
  return domain == "docker.io" ? "registry-1.docker.io" : domain;
}

std::string ImageRef::manifestReference() const {
  return digest ? digest->str() : *tag;
}

std::string ImageRef::str() const {
  std::string out = domain + "/" + repository;
  if (tag)
    out += ":" + *tag;
  if (digest)
    out += "@" + digest->str();
  return out;
}

std::string ImageRef::pullScope() const {
  return "repository:" + repository + ":pull";
}

}  // namespace pullagent::puller
