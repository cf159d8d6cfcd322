#pragma once

#include "base/error.h"

namespace pullagent::agent {

// Process exit codes, so scripts and the platform can tell failures apart.
enum ExitCode : int {
  kExitOk = 0,
  kExitFailure = 1,    // anything not listed below
  kExitUsage = 2,      // bad command line or bad input (reference, platform)
  kExitAuth = 3,       // credentials missing, rejected or not allowed to pull
  kExitNotFound = 4,   // repository, tag, digest or platform does not exist
  kExitTransient = 5,  // network trouble, 429/5xx, timeouts: trying later may work
  kExitIntegrity = 6,  // digest mismatch, protocol violation, TLS or redirect refused
};

int exitCodeFor(const Error& error);

}  // namespace pullagent::agent
