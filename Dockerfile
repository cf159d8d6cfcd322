# Multi-stage build: the build stage compiles, runs the unit tests and installs into /install;
# the runtime stage is Debian slim with only the runtime libraries and what `cmake --install`
# put there, starting the daemon. Package lists are shared with scripts/setup
# (scripts/packages-*.txt); scripts/lint-dockerfile checks this file (ctest dockerfile_lint).
FROM debian:12 AS build
# The build packages, and the runtime ones: the unit tests read the seccomp profile the bundles
# are written with (golang-github-containers-common).
COPY scripts/packages-build.txt scripts/packages-runtime.txt /tmp/
RUN apt-get update \
 && grep -hv '^#' /tmp/packages-build.txt /tmp/packages-runtime.txt \
    | xargs apt-get install -y --no-install-recommends \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake --preset release -DPULLAGENT_BUILD_TESTS=ON \
 && cmake --build --preset release \
 && ctest --preset release -L '^unit$' \
 && DESTDIR=/install cmake --install build/release --prefix /usr

FROM debian:12-slim
COPY scripts/packages-runtime.txt /tmp/packages-runtime.txt
RUN apt-get update \
 && grep -v '^#' /tmp/packages-runtime.txt | xargs apt-get install -y --no-install-recommends \
 && rm -rf /var/lib/apt/lists/* /tmp/packages-runtime.txt \
 && mkdir -p /etc/pullagent/sites /var/lib/pullagent \
 && chmod 0700 /var/lib/pullagent
COPY --from=build /install/usr/ /usr/
COPY systemd/agent.example.json /etc/pullagent/agent.json
VOLUME ["/var/lib/pullagent"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/pullagent"]
CMD ["--config", "/etc/pullagent/agent.json", "--log-format", "json"]
