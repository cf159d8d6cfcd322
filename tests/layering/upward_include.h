#pragma once

// Not compiled: the module-graph test hands this file to cmake/CheckIncludes.cmake as if it
// were in the oci module, which sits below the pipeline, and expects the check to refuse it.
#include "base/error.h"
#include "puller/pipeline/image_puller.h"
