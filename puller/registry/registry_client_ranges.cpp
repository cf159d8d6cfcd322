// RegistryClient::fetchBlobRanges: one blob over several connections (blob_ranges.h).
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <condition_variable>
#include <mutex>
#include <stop_token>
#include <thread>

#include "puller/http/registry_errors.h"
#include "puller/registry/blob_ranges.h"
#include "puller/registry/registry_client.h"

namespace pullagent::puller {
namespace {

// Received bytes join the verified prefix in steps this small, so that the connections writing
// beside it wait for the shared lock no longer than one step takes to hash.
constexpr int64_t kAdoptStep = 256 * 1024;

// What a part's answer says about the server's Range support.
enum class Answer { kPending, kRanged, kWhole, kNone };

// Errors that say the bytes or the protocol are wrong end every part at once; a connection
// that failed or ended early leaves the other parts to finish.
bool endsEveryPart(const Error& error) {
  return error.code == ErrorCode::kDigestMismatch || error.code == ErrorCode::kProtocol ||
         error.code == ErrorCode::kResourceExhausted || error.code == ErrorCode::kInternal;
}

}  // namespace

Status RegistryClient::fetchBlobRanges(const RegistrySource& source, const Descriptor& blob,
                                       Ingest& ingest, BlobParts& parts, BlobObserver* observer,
                                       const Context& ctx) {
  const std::string what = "blob " + blob.digest.str() + " from " + source.host;
  // Everything below is shared by the part threads and this one, under `mutex`: the parts, the
  // ingest (written ahead by the parts, adopted into the prefix here), the answers.
  std::mutex mutex;
  std::condition_variable changed;
  Answer answer = Answer::kPending;  // of the first request (the probe)
  std::vector<Status> outcomes(parts.parts().size());
  std::vector<bool> finished(parts.parts().size(), true);
  std::optional<Error> fatal;

  std::stop_source stop;
  std::stop_callback forward(ctx.stop, [&] { stop.request_stop(); });
  const Context part_ctx{ctx.clock, stop.get_token(), ctx.deadline};

  if (observer != nullptr)
    observer->onBlobStart(blob, parts.received());

  // One request for what part `index` misses; returns the bytes it received.
  auto request_part = [&](size_t index, bool probe, Status& outcome) -> int64_t {
    BlobPart asked;
    {
      std::lock_guard lock(mutex);
      asked = parts.parts()[index];
    }
    HttpRequest request;
    request.url = url(source, "blobs", blob.digest.str());
    request.headers.push_back({"Range", asked.rangeHeader()});
    int64_t skip = 0;           // bytes of a whole-blob answer that precede the part
    int64_t limit = asked.end;  // where this answer's bytes end
    int64_t got = 0;
    request.on_head = [&](const HttpResponseHead& head) -> Status {
      if (head.status == 206) {
        ASSIGN_OR_RETURN(int64_t last, checkPartRange(head.header("Content-Range"), asked.next(),
                                                      asked.end - 1, blob.size));
        limit = last + 1;
        if (probe) {
          std::lock_guard lock(mutex);
          answer = Answer::kRanged;
          changed.notify_all();
        }
        return {};
      }
      if (head.status != 200)
        return makeError(ErrorCode::kProtocol, "unexpected HTTP " + std::to_string(head.status));
      std::lock_guard lock(mutex);
      // Only the first request may find that the server ignores Range (or one that follows it
      // on the single stream it became).
      if (!probe && answer != Answer::kWhole) {
        return makeError(ErrorCode::kProtocol,
                         "the server ignored Range after it honoured it for another part");
      }
      // The server ignores Range and sends the whole blob: one stream from here to the end.
      spdlog::info("{}: the server ignores Range; one stream from byte {}", what, asked.next());
      skip = asked.next();
      limit = blob.size;
      parts.collapse(index);
      asked = parts.parts()[index];
      answer = Answer::kWhole;
      changed.notify_all();
      return {};
    };
    request.on_body = [&](std::string_view chunk) -> Status {
      if (tally_ != nullptr)
        tally_->bytes(source.origin, static_cast<int64_t>(chunk.size()));
      if (skip > 0) {
        const auto dropped = std::min<int64_t>(skip, static_cast<int64_t>(chunk.size()));
        chunk.remove_prefix(static_cast<size_t>(dropped));
        skip -= dropped;
      }
      if (chunk.empty())
        return {};
      std::lock_guard lock(mutex);
      BlobPart& part = parts.parts()[index];
      if (part.next() + static_cast<int64_t>(chunk.size()) > limit) {
        return makeError(ErrorCode::kProtocol,
                         "more bytes than the range " + asked.rangeHeader() + " asked for");
      }
      RETURN_IF_ERROR(ingest.writeAt(part.next(), chunk));
      part.received += static_cast<int64_t>(chunk.size());
      parts.wrote(static_cast<int64_t>(chunk.size()));
      got += static_cast<int64_t>(chunk.size());
      changed.notify_all();
      if (observer != nullptr)
        observer->onBlobBytes(blob, static_cast<int64_t>(chunk.size()));
      return {};
    };
    auto response = sendAuthorized(source, request, part_ctx);
    if (!response) {
      outcome = response.error().context(what + " (" + asked.rangeHeader() + ")");
    } else if (response->status == 416) {
      outcome = makeError(ErrorCode::kProtocol,
                          what + ": range " + asked.rangeHeader() +
                              " not satisfiable: the registry holds fewer bytes than the " +
                              std::to_string(blob.size) + " its descriptor declares");
    } else if (response->status < 200 || response->status >= 300) {
      outcome = registryError(response.value(), what, clock_.wallNow());
    } else {
      std::lock_guard lock(mutex);
      outcome = parts.parts()[index].complete()
                    ? Status{}
                    : makeError(ErrorCode::kUnavailable,
                                what + ": range " + asked.rangeHeader() + " ended after " +
                                    std::to_string(parts.parts()[index].next() - asked.next()) +
                                    " bytes");
    }
    return got;
  };

  // A part's thread: a connection cut after it delivered a good share of what it was asked
  // (a MiB, or a quarter of what it missed) is asked again at once for the rest of that part alone,
  // a few times at most; any other failure ends the part, and the caller's retry (with its backoff)
  // asks again. A server that cuts every answer after a byte gets no stream of requests.
  auto run_part = [&](size_t index, bool probe) {
    constexpr int64_t kGoodShare = int64_t{1} << 20;
    constexpr int kImmediateAsks = 8;
    Status outcome;
    for (int asks = 0;; ++asks) {
      int64_t missing = 0;
      {
        std::lock_guard lock(mutex);
        missing = parts.parts()[index].end - parts.parts()[index].next();
      }
      const int64_t got = request_part(index, probe, outcome);
      probe = false;
      if (outcome || got < std::min(kGoodShare, std::max<int64_t>(missing / 4, 1)) ||
          asks + 1 >= kImmediateAsks || !isRetryable(outcome.error()) ||
          part_ctx.stop.stop_requested())
        break;
      spdlog::info("{}; asking for the rest of that range again", outcome.error().describe());
    }
    std::lock_guard lock(mutex);
    if (!outcome && endsEveryPart(outcome.error()) && !fatal) {
      fatal = outcome.error();
      stop.request_stop();
    }
    outcomes[index] = std::move(outcome);
    finished[index] = true;
    if (answer == Answer::kPending)
      answer = Answer::kNone;  // the probe failed before an answer: no other part is asked
    changed.notify_all();
  };

  std::vector<std::jthread> threads;
  std::unique_lock lock(mutex);
  auto start = [&](size_t index, bool probe) {
    finished[index] = false;
    threads.emplace_back([&run_part, index, probe] { run_part(index, probe); });
  };
  // The first part that misses bytes asks first: only a server that answers it with 206 gets
  // the other parts' requests (one that ignores Range would send the whole blob to each).
  size_t first = 0;
  while (first < parts.parts().size() && parts.parts()[first].complete())
    ++first;
  if (first < parts.parts().size())
    start(first, true);
  Status adopted;
  bool others_started = false;
  while (true) {
    if (!others_started && answer != Answer::kPending) {
      others_started = true;
      if (answer == Answer::kRanged && !fatal && !stop.stop_requested()) {
        for (size_t index = first + 1; index < parts.parts().size(); ++index) {
          if (!parts.parts()[index].complete())
            start(index, false);
        }
      }
    }
    const int64_t contiguous = parts.contiguousEnd();
    if (adopted && contiguous > ingest.offset()) {
      adopted = ingest.adopt(std::min(contiguous - ingest.offset(), kAdoptStep));
      if (!adopted) {
        fatal = adopted.error();
        stop.request_stop();
      }
      // Let the parts' threads write between steps.
      lock.unlock();
      std::this_thread::yield();
      lock.lock();
      continue;
    }
    if (std::all_of(finished.begin(), finished.end(), [](bool done) { return done; }))
      break;
    changed.wait(lock);
  }
  lock.unlock();
  threads.clear();  // all have finished; joined here

  if (fatal)
    return *fatal;
  RETURN_IF_ERROR(ctx.check());
  for (auto& outcome : outcomes) {
    if (!outcome)
      return outcome;
  }
  if (ingest.offset() < blob.size) {
    return makeError(ErrorCode::kUnavailable, what + ": transfer ended after " +
                                                  std::to_string(ingest.offset()) + " of " +
                                                  std::to_string(blob.size) + " bytes");
  }
  return {};
}

Result<std::string> RegistryClient::fetchRange(const Descriptor& blob, int64_t first, int64_t last,
                                               const Context& ctx) {
  const std::string range = "bytes=" + std::to_string(first) + "-" + std::to_string(last);
  const std::string what = "blob " + blob.digest.str() + " (" + range + ")";
  if (first < 0 || last < first || last >= blob.size || last - first + 1 > kMaxRangeBytes) {
    return makeError(ErrorCode::kInvalidArgument,
                     what + ": outside the blob's " + std::to_string(blob.size) +
                         " bytes or over " + std::to_string(kMaxRangeBytes));
  }
  std::string bytes;
  auto attempt = [&](const RegistrySource& source) -> AttemptOutcome {
    bytes.clear();
    HttpRequest request;
    request.url = url(source, "blobs", blob.digest.str());
    request.headers.push_back({"Range", range});
    request.on_head = [&](const HttpResponseHead& head) -> Status {
      if (head.status == 200) {
        return makeError(ErrorCode::kUnsupported,
                         "the registry " + source.host + " ignores Range requests");
      }
      if (head.status != 206)
        return makeError(ErrorCode::kProtocol, "unexpected HTTP " + std::to_string(head.status));
      ASSIGN_OR_RETURN(int64_t end,
                       checkPartRange(head.header("Content-Range"), first, last, blob.size));
      if (end != last)
        return makeError(ErrorCode::kProtocol, "a shorter range than asked for");
      bytes.reserve(static_cast<size_t>(last - first + 1));
      return {};
    };
    request.on_body = [&](std::string_view chunk) -> Status {
      if (tally_ != nullptr)
        tally_->bytes(source.origin, static_cast<int64_t>(chunk.size()));
      if (static_cast<int64_t>(bytes.size() + chunk.size()) > last - first + 1)
        return makeError(ErrorCode::kProtocol, "more bytes than the range asked for");
      bytes.append(chunk);
      return {};
    };
    auto response = sendAuthorized(source, request, ctx);
    if (!response)
      return response.error().context(what + " from " + source.host);
    if (response->status < 200 || response->status >= 300)
      return registryError(response.value(), what + " from " + source.host, clock_.wallNow());
    if (static_cast<int64_t>(bytes.size()) != last - first + 1) {
      return makeError(ErrorCode::kUnavailable, what + " from " + source.host +
                                                    ": the answer ended after " +
                                                    std::to_string(bytes.size()) + " bytes");
    }
    return Status{};
  };
  RETURN_IF_ERROR(trySources(
      what, [&](size_t index) { return sources_[index].pull; }, ctx, attempt));
  return bytes;
}

}  // namespace pullagent::puller
