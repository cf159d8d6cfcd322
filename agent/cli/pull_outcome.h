#pragma once

#include "puller/pipeline/pull_pipeline.h"

namespace pullagent::agent {

// The summary block on stdout after `pull` and `--once`.
void printOutcome(const puller::ImageRef& ref, const puller::PullOutcome& outcome);

}  // namespace pullagent::agent
