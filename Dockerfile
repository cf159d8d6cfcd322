# Multi-stage build: the build stage compiles and runs the unit tests; the runtime stage is
# Debian slim with only the runtime libraries and the binary. Package lists are shared with
# scripts/setup (scripts/packages-*.txt).
FROM debian:12 AS build
COPY scripts/packages-build.txt /tmp/packages-build.txt
RUN apt-get update \
 && grep -v '^#' /tmp/packages-build.txt | xargs apt-get install -y --no-install-recommends \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake --preset release -DPULLAGENT_BUILD_TESTS=ON \
 && cmake --build --preset release \
 && ctest --preset release -E '^integration$' --output-on-failure

FROM debian:12-slim
COPY scripts/packages-runtime.txt /tmp/packages-runtime.txt
RUN apt-get update \
 && grep -v '^#' /tmp/packages-runtime.txt | xargs apt-get install -y --no-install-recommends \
 && rm -rf /var/lib/apt/lists/* /tmp/packages-runtime.txt
COPY --from=build /src/build/release/agent/pullagent /usr/bin/pullagent
ENTRYPOINT ["/usr/bin/pullagent"]
CMD ["--help"]
