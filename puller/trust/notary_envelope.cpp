#include "puller/trust/notary_envelope.h"

#include <cctype>

#include "base/json_reader.h"
#include "puller/trust/cose_envelope.h"
#include "puller/trust/jws_envelope.h"

namespace pullagent::puller::notation {
namespace {

int digits(std::string_view text, size_t at, size_t count) {
  int value = 0;
  for (size_t i = at; i < at + count; ++i) {
    if (i >= text.size() || !std::isdigit(static_cast<unsigned char>(text[i])))
      return -1;
    value = value * 10 + (text[i] - '0');
  }
  return value;
}

}  // namespace

std::optional<std::time_t> parseRfc3339(std::string_view text) {
  // 2006-01-02T15:04:05[.frac](Z|±hh:mm)
  if (text.size() < 20 || text[4] != '-' || text[7] != '-' ||
      (text[10] != 'T' && text[10] != 't') || text[13] != ':' || text[16] != ':')
    return std::nullopt;
  struct tm parts {};
  const int year = digits(text, 0, 4);
  const int month = digits(text, 5, 2);
  const int day = digits(text, 8, 2);
  const int hour = digits(text, 11, 2);
  const int minute = digits(text, 14, 2);
  const int second = digits(text, 17, 2);
  if (year < 1970 || month < 1 || month > 12 || day < 1 || day > 31 || hour < 0 || hour > 23 ||
      minute < 0 || minute > 59 || second < 0 || second > 60)
    return std::nullopt;
  size_t at = 19;
  if (at < text.size() && text[at] == '.') {
    ++at;
    const size_t start = at;
    while (at < text.size() && std::isdigit(static_cast<unsigned char>(text[at])))
      ++at;
    if (at == start || at - start > 9)
      return std::nullopt;
  }
  long offset = 0;
  if (at < text.size() && (text[at] == 'Z' || text[at] == 'z')) {
    ++at;
  } else if (at + 6 == text.size() && (text[at] == '+' || text[at] == '-') && text[at + 3] == ':') {
    const int hours = digits(text, at + 1, 2);
    const int minutes = digits(text, at + 4, 2);
    if (hours < 0 || hours > 23 || minutes < 0 || minutes > 59)
      return std::nullopt;
    offset = (text[at] == '+' ? 1 : -1) * (hours * 3600L + minutes * 60L);
    at += 6;
  } else {
    return std::nullopt;
  }
  if (at != text.size())
    return std::nullopt;
  parts.tm_year = year - 1900;
  parts.tm_mon = month - 1;
  parts.tm_mday = day;
  parts.tm_hour = hour;
  parts.tm_min = minute;
  parts.tm_sec = second;
  const std::time_t utc = timegm(&parts);
  // timegm normalises 31 February into March: such a date is not a date.
  struct tm check {};
  gmtime_r(&utc, &check);
  if (check.tm_mday != day && second != 60)
    return std::nullopt;
  return utc - offset;
}

Result<Descriptor> parsePayload(std::string_view payload) {
  ASSIGN_OR_RETURN(auto doc, parseJson(payload, "Notary payload", ErrorCode::kUntrusted, 16));
  const JsonReader root(doc, "Notary payload", ErrorCode::kUntrusted);
  if (!root.isObject())
    return root.typeError("an object");
  return parseDescriptor(root["targetArtifact"]);
}

Result<Envelope> parseEnvelope(std::string_view media_type, std::string_view bytes) {
  if (media_type == kJwsMediaType)
    return parseJws(bytes);
  if (media_type == kCoseMediaType)
    return parseCose(bytes);
  return makeError(ErrorCode::kUntrusted, "an envelope of the type \"" +
                                              std::string(media_type.substr(0, 80)) +
                                              "\", neither JWS nor COSE");
}

}  // namespace pullagent::puller::notation
