#pragma once

#include "agent/common/args.h"
#include "agent/common/process_environment.h"
#include "base/error.h"

namespace pullagent::agent {

// Sets up logging from `--log-level` and `--log-format` (text, journal, json). Without
// `--log-format`: journal when stderr is connected to journald (JOURNAL_STREAM), else text.
// Every command takes both options.
Status initLoggingFromArgs(const ParsedArgs& args, const ProcessEnvironment& env);

}  // namespace pullagent::agent
