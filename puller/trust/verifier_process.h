#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "base/context.h"
#include "base/error.h"

namespace pullagent::puller {

struct VerifierRun {
  int exit_code = -1;  // the program's exit status
  std::string out;     // stdout, at most kMaxVerifierOutput bytes
  std::string err;     // stderr, likewise
};

inline constexpr size_t kMaxVerifierOutput = 16 * 1024;

// Runs one external verifier to completion: `program` with `arguments`, `input` on its stdin,
// in a process group of its own, with an environment of PATH and LANG alone (the agent's may
// hold App Service's IDENTITY_HEADER, and a verifier is not to have it), its working directory
// /. Killed with its group at `timeout` or when `ctx` ends: then an error (kTimeout,
// kCancelled), as is a program that cannot be started, or killed by a signal. Output past
// kMaxVerifierOutput per stream is read and dropped.
Result<VerifierRun> runVerifierProcess(const std::filesystem::path& program,
                                       const std::vector<std::string>& arguments,
                                       const std::string& input, std::chrono::milliseconds timeout,
                                       const Context& ctx);

// `text` for a log line or an error: non-printable bytes as \xNN, cut at `limit` bytes.
std::string escapedOutput(const std::string& text, size_t limit);

}  // namespace pullagent::puller
