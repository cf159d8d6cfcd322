#include "puller/trust/notary_signature.h"

#include <algorithm>

#include "puller/trust/notary_envelope.h"
#include "puller/trust/timestamp.h"

namespace pullagent::puller {
namespace {

std::string utcText(std::time_t when) {
  struct tm parts {};
  gmtime_r(&when, &parts);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S UTC", &parts);
  return text;
}

std::string storesText(bool signing_authority) {
  return signing_authority ? "its signingAuthority trust stores" : "its ca trust stores";
}

// The chain's own rules (notation-core-go ValidateCodeSigningCertChain): leaf first, each
// certificate issued and signed by the next, the last self-signed; the leaf a code signing
// certificate, the others CAs whose path lengths allow the chain below them.
Status checkChain(const CertificateChain& chain) {
  RETURN_IF_ERROR(chain.front()->checkLeaf());
  for (size_t i = 1; i < chain.size(); ++i) {
    if (chain[i - 1]->selfSigned())
      return makeError(ErrorCode::kUntrusted, "\"" + chain[i - 1]->subject() +
                                                  "\" is self-signed, yet not the chain's last");
    if (!chain[i - 1]->issuedBy(*chain[i]))
      return makeError(ErrorCode::kUntrusted, "\"" + chain[i - 1]->subject() +
                                                  "\" is not issued and signed by the next "
                                                  "certificate of the chain, \"" +
                                                  chain[i]->subject() + "\"");
    RETURN_IF_ERROR(chain[i]->checkCa(static_cast<int>(i) - 1));
  }
  if (!chain.back()->selfSigned())
    return makeError(ErrorCode::kUntrusted, "the chain ends at \"" + chain.back()->subject() +
                                                "\", which is not self-signed (a root)");
  return {};
}

std::string validityText(const Certificate& certificate) {
  return "valid from " + certificate.notBefore() + " to " + certificate.notAfter();
}

// When the chain counts as valid (notation-go's verifyAuthenticTimestamp): signingAuthority at
// the signing time the signing service vouches for; notary.x509 at the time an RFC 3161
// timestamp by a tsa store's authority attests, when the statement has tsa stores (and, with
// verifyTimestamp afterCertExpiry, only once a certificate expired), else now.
//
// A timestamp counts only while its authority's chain is not revoked (notation-go's
// verifyTimestamp): every certificate of the chain TS verification built but its root is asked
// by `revocation`, and a status that cannot be had fails the check as a revoked one does. Not
// with `ask_services` false (an enforced check failed already: the signature is refused
// whatever they answer, and notation-go would not have come this far). `asked_revocation` says
// whether any service was asked.
std::optional<std::string> authenticTimestamp(const notation::Envelope& envelope,
                                              const NotationTrustPolicy& statement, std::time_t now,
                                              const RevocationCheck& revocation, bool ask_services,
                                              bool& asked_revocation) {
  const bool signing_authority = envelope.signing_scheme == notation::kSchemeSigningAuthority;
  const bool any_expired =
      std::any_of(envelope.chain.begin(), envelope.chain.end(),
                  [&](const auto& certificate) { return certificate->expiredBy(now); });
  if (!signing_authority && !statement.tsa.empty() && (statement.timestamp_always || any_expired)) {
    if (!envelope.timestamped)
      return std::string(
          "the statement verifies timestamps (it names a tsa trust store), and "
          "the signature has none");
    auto timestamp = verifyTimestamp(envelope.timestamp_token, envelope.signature, statement.tsa);
    if (!timestamp)
      return timestamp.error().message;
    const std::time_t from = timestamp->time - timestamp->accuracy;
    const std::time_t to = timestamp->time + timestamp->accuracy;
    for (const auto& certificate : envelope.chain) {
      if (!certificate->validAt(from) || !certificate->validAt(to))
        return "the certificate \"" + certificate->subject() + "\" was not valid at the " +
               "timestamp's time, " + utcText(timestamp->time) + " (" + validityText(*certificate) +
               ")";
    }
    const CertificateChain& authority = timestamp->chain;
    const bool revocable =
        authority.size() > 1 &&
        std::any_of(authority.begin(), std::prev(authority.end()),
                    [](const auto& certificate) { return certificate->namesRevocationService(); });
    if (!revocable || !ask_services)
      return std::nullopt;
    if (!revocation)
      return "the timestamping chain of \"" + authority.front()->subject() +
             "\" names OCSP responders or CRLs, and no network is at hand to ask them";
    asked_revocation = true;
    const auto result = revocation(authority, std::nullopt);
    if (result.status != RevocationResult::Status::kGood)
      return "the timestamp's authority: " + result.detail;
    return std::nullopt;
  }
  const std::time_t at = signing_authority ? *envelope.authentic_signing_time : now;
  for (const auto& certificate : envelope.chain) {
    if (!certificate->validAt(at))
      return "the certificate \"" + certificate->subject() + "\" is not valid at " + utcText(at) +
             " (" + validityText(*certificate) + ")" +
             (envelope.timestamped && statement.tsa.empty()
                  ? "; its signature has an RFC 3161 timestamp, which a tsa trust store would "
                    "let count"
                  : "");
  }
  return std::nullopt;
}

// How long an acceptance taken at `now` holds by the clock alone (NotaryOutcome::holds_until):
// only what is enforced limits it; a logged check that starts failing later is only logged.
std::optional<std::time_t> holdsUntil(const notation::Envelope& envelope,
                                      const NotationTrustPolicy& statement, std::time_t now,
                                      bool enforced_revocation) {
  std::optional<std::time_t> until;
  auto limit = [&](std::time_t when) { until = until ? std::min(*until, when) : when; };
  if (statement.action(NotationCheck::kExpiry) == CheckAction::kEnforce && envelope.expiry)
    limit(*envelope.expiry);
  // The chain's validity was judged at now unless a timestamp or the signing authority's
  // signing time stood for it (authenticTimestamp): then it holds until a certificate expires.
  const bool signing_authority = envelope.signing_scheme == notation::kSchemeSigningAuthority;
  const bool any_expired =
      std::any_of(envelope.chain.begin(), envelope.chain.end(),
                  [&](const auto& certificate) { return certificate->expiredBy(now); });
  const bool at_timestamp = !statement.tsa.empty() && (statement.timestamp_always || any_expired);
  if (statement.action(NotationCheck::kAuthenticTimestamp) == CheckAction::kEnforce &&
      !signing_authority && !at_timestamp) {
    for (const auto& certificate : envelope.chain)
      limit(certificate->notAfterTime().value_or(now));
  }
  // A certificate good now may be revoked in an hour: a kept verdict asks again by then.
  constexpr std::time_t kRevocationRecheck = 3600;
  if (enforced_revocation)
    limit(now + kRevocationRecheck);
  return until;
}

}  // namespace

NotaryOutcome verifyNotarySignature(std::string_view bytes, std::string_view media_type,
                                    const NotationTrustPolicy& statement, const Descriptor& subject,
                                    std::time_t now, const RevocationCheck& revocation) {
  NotaryOutcome outcome;
  auto failed = [&](std::string why) {
    outcome.failure = std::move(why);
    outcome.failed_check = "integrity";
    return outcome;
  };
  // integrity: the envelope, the chain's own rules, the signature, and that it signs what is
  // pulled. Never overridden.
  auto envelope = notation::parseEnvelope(media_type, bytes);
  if (!envelope)
    return failed("integrity: " + envelope.error().message);
  if (auto chain = checkChain(envelope->chain); !chain)
    return failed("integrity: " + chain.error().message);
  const Certificate& leaf = *envelope->chain.front();
  if (auto verified =
          leaf.verifySignature(envelope->algorithm, envelope->signing_input, envelope->signature);
      !verified)
    return failed("integrity: " + verified.error().message);
  auto target = notation::parsePayload(envelope->payload);
  if (!target)
    return failed("integrity: " + target.error().message);
  if (target->digest != subject.digest || target->size != subject.size ||
      target->media_type != subject.media_type)
    return failed("integrity: it signs " + target->digest.str() + " (" +
                  target->media_type.substr(0, 80) + ", " + std::to_string(target->size) +
                  " bytes), not " + subject.digest.str() + " (" + subject.media_type + ", " +
                  std::to_string(subject.size) + " bytes)");
  const std::string signer = leaf.subject();
  outcome.signer = signer;

  // Every other check: enforced ones fail the signature, logged ones are kept for the log.
  auto fail = [&](NotationCheck check, const std::string& why) {
    const std::string name(notationCheckName(check));
    const std::string text = name + ": " + why;
    if (statement.action(check) == CheckAction::kEnforce) {
      if (!outcome.failure) {
        outcome.failure = text;
        outcome.failed_check = name;
      }
    } else if (statement.action(check) == CheckAction::kLog) {
      outcome.logged.push_back(text);
      outcome.logged_checks.push_back(name);
    }
  };

  const bool signing_authority = envelope->signing_scheme == notation::kSchemeSigningAuthority;
  // Whether a trust store vouches for the chain: only then are the revocation services its
  // certificates name asked anything, and only those of the certificates from the leaf up to
  // the one in the store. Above it x5c is unsigned input: a certificate copying the real
  // issuer's name and key could name any address.
  bool vouched = false;
  CertificateChain vouched_part;  // the leaf up to the trust store's certificate
  {
    const CertificateChain& trusted =
        signing_authority ? statement.signing_authority : statement.ca;
    bool anchored = false;
    for (const auto& certificate : envelope->chain) {
      vouched_part.push_back(certificate);
      anchored = std::any_of(trusted.begin(), trusted.end(),
                             [&](const auto& stored) { return *stored == *certificate; });
      if (anchored)
        break;
    }
    if (!anchored)
      vouched_part.clear();
    if (!anchored) {
      fail(NotationCheck::kAuthenticity,
           "the chain of \"" + signer + "\" (root \"" + envelope->chain.back()->subject() +
               "\") holds no certificate of " + storesText(signing_authority));
    } else if (!statement.any_identity) {
      const auto leaf_name = leafIdentity(leaf.subjectAttributes());
      const bool known =
          leaf_name &&
          std::any_of(statement.identities.begin(), statement.identities.end(),
                      [&](const auto& identity) { return identityMatches(identity, *leaf_name); });
      if (!known)
        fail(NotationCheck::kAuthenticity,
             "the signing certificate \"" + signer + "\" is none of the trusted identities");
      vouched = known;
    } else {
      vouched = true;
    }
  }
  // Whether an enforced check took a revocation service's answer (the verdict then holds for
  // an hour: holdsUntil).
  bool enforced_revocation = false;
  if (statement.action(NotationCheck::kAuthenticTimestamp) != CheckAction::kSkip) {
    bool asked = false;
    if (auto why = authenticTimestamp(*envelope, statement, now, revocation,
                                      !outcome.failure.has_value(), asked))
      fail(NotationCheck::kAuthenticTimestamp, *why);
    enforced_revocation =
        asked && statement.action(NotationCheck::kAuthenticTimestamp) == CheckAction::kEnforce;
  }
  if (statement.action(NotationCheck::kExpiry) != CheckAction::kSkip && envelope->expiry &&
      *envelope->expiry <= now)
    fail(NotationCheck::kExpiry, "the signature expired at " + utcText(*envelope->expiry));
  // The trust store's certificate itself is the host's choice, not asked about.
  const size_t asked = vouched ? vouched_part.size() - 1 : envelope->chain.size();
  bool revocable = false;
  for (size_t i = 0; i < asked; ++i) {
    const CertificateChain& chain = vouched ? vouched_part : envelope->chain;
    revocable = revocable || chain[i]->namesRevocationService();
  }
  if (statement.action(NotationCheck::kRevocation) != CheckAction::kSkip && revocable) {
    if (!vouched) {
      fail(NotationCheck::kRevocation,
           "not checked: no trust store vouches for the chain, so the services it names are "
           "not asked");
    } else if (!revocation) {
      fail(NotationCheck::kRevocation,
           "the chain names OCSP responders or CRLs, and no "
           "network is at hand to ask them");
    } else {
      // A signing authority vouches for its signing time: a certificate revoked with an
      // invalidity date after it still counts (notation-go's verifyRevocation).
      const auto result =
          revocation(vouched_part, signing_authority ? envelope->authentic_signing_time
                                                     : std::optional<std::time_t>());
      if (result.status != RevocationResult::Status::kGood)
        fail(NotationCheck::kRevocation, result.detail);
      enforced_revocation = enforced_revocation ||
                            statement.action(NotationCheck::kRevocation) == CheckAction::kEnforce;
    }
  }
  outcome.holds_until = holdsUntil(*envelope, statement, now, enforced_revocation);
  return outcome;
}

}  // namespace pullagent::puller
