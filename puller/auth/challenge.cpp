#include "puller/auth/challenge.h"

#include <algorithm>
#include <cctype>
#include <cstring>

namespace pullagent::puller {
namespace {

bool isTchar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 || std::strchr("!#$%&'*+-.^_`|~", c);
}

bool isToken68Char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 || std::strchr("-._~+/", c);
}

std::string lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text) {}

  void parseInto(std::vector<Challenge>& out) {
    while (true) {
      skipSpaceAndCommas();
      if (atEnd())
        return;
      auto scheme = readToken();
      if (scheme.empty())
        return;  // garbage: stop rather than guess
      Challenge challenge;
      challenge.scheme = lower(scheme);
      skipSpace();
      readParams(challenge);
      out.push_back(std::move(challenge));
    }
  }

 private:
  bool atEnd() const { return pos_ >= text_.size(); }
  char peek() const { return atEnd() ? '\0' : text_[pos_]; }
  void skipSpace() {
    while (!atEnd() && (peek() == ' ' || peek() == '\t'))
      ++pos_;
  }
  void skipSpaceAndCommas() {
    while (!atEnd() && (peek() == ' ' || peek() == '\t' || peek() == ','))
      ++pos_;
  }
  std::string_view readToken() {
    size_t start = pos_;
    while (!atEnd() && isTchar(peek()))
      ++pos_;
    return text_.substr(start, pos_ - start);
  }

  // quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE
  std::optional<std::string> readQuoted() {
    ++pos_;  // opening quote
    std::string value;
    while (!atEnd()) {
      char c = text_[pos_++];
      if (c == '"')
        return value;
      if (c == '\\') {
        if (atEnd())
          return std::nullopt;
        value.push_back(text_[pos_++]);
      } else {
        value.push_back(c);
      }
    }
    return std::nullopt;  // unterminated
  }

  // Is there `token BWS "="` (and not a token68 "==" tail) at the current position?
  bool paramAhead() const {
    size_t p = pos_;
    while (p < text_.size() && isTchar(text_[p]))
      ++p;
    if (p == pos_)
      return false;
    while (p < text_.size() && (text_[p] == ' ' || text_[p] == '\t'))
      ++p;
    return p < text_.size() && text_[p] == '=';
  }

  void readParams(Challenge& challenge) {
    // token68: 1*tchar68 *"=" followed by end or ','.
    {
      size_t p = pos_;
      while (p < text_.size() && isToken68Char(text_[p]))
        ++p;
      size_t body_end = p;
      while (p < text_.size() && text_[p] == '=')
        ++p;
      size_t q = p;
      while (q < text_.size() && (text_[q] == ' ' || text_[q] == '\t'))
        ++q;
      bool ends = q >= text_.size() || text_[q] == ',';
      if (body_end > pos_ && ends && (p > body_end || !paramAhead())) {
        challenge.token68 = std::string(text_.substr(pos_, p - pos_));
        pos_ = p;
        return;
      }
    }
    while (true) {
      skipSpace();
      if (!paramAhead())
        return;  // next challenge (or end)
      auto name = lower(readToken());
      skipSpace();
      ++pos_;  // '='
      skipSpace();
      std::optional<std::string> value;
      if (peek() == '"') {
        value = readQuoted();
        if (!value)
          return;
      } else {
        value = std::string(readToken());
      }
      challenge.params.emplace(name, *value);  // the first occurrence wins
      skipSpace();
      if (peek() != ',')
        return;
      // After a comma: another param of this challenge, or a new challenge's scheme.
      size_t save = pos_;
      skipSpaceAndCommas();
      if (!paramAhead()) {
        pos_ = save;
        return;
      }
    }
  }

  std::string_view text_;
  size_t pos_ = 0;
};

}  // namespace

std::optional<std::string> Challenge::param(const std::string& name) const {
  auto it = params.find(name);
  if (it == params.end())
    return std::nullopt;
  return it->second;
}

std::vector<Challenge> parseChallenges(const std::vector<std::string>& field_values) {
  std::vector<Challenge> challenges;
  for (const auto& value : field_values)
    Parser(value).parseInto(challenges);
  return challenges;
}

}  // namespace pullagent::puller
