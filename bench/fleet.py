#!/usr/bin/env python3
"""Fleet benchmark: what a registry sees when many sites pull at once.

  throttled  SITES sites in one pullagent service pull (five different images) from a registry
             that answers 429 with Retry-After to every request beyond PER_SECOND in a second,
             as ACR throttles. Once with the shared limiter (one host's "slow down" pauses
             every site's pulls to it) and once without (shareRegistryThrottle: false, each pull
             backs off on its own, as containerd does): requests made, 429s received, seconds
             until every site is published.
  cache      pulls through a pull-through cache (Debian's docker-registry in proxy mode, set up
             as a mirror in a containerd hosts.toml), cold then warm, beside a pull straight
             from the origin: requests and bytes the origin served per pull.

The registry stack is tests/support/stack.py (real docker-registry instances, TLS, a recording
fault proxy in front). Run as root (the service publishes images):
  bench/fleet.py --pullagent build/release/agent/pullagent"""
import argparse
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
IMAGES = ["test/multi:v1", "test/multi:v2", "test/docker:v1", "test/semantics:v1",
          "test/semantics:standalone"]


class Stack:
    def __init__(self, work):
        self.dir = os.path.join(work, "stack")
        self.keepalive_r, self.keepalive_w = os.pipe()
        self.process = subprocess.Popen([sys.executable, os.path.join(ROOT, "tests/support/stack.py"),
                                         "--dir", self.dir], stdin=self.keepalive_r,
                                        stdout=subprocess.PIPE, text=True)
        if self.process.stdout.readline().strip() != "READY":
            raise RuntimeError("the registry stack did not start")
        self.info = json.load(open(os.path.join(self.dir, "stack.json")))
        self.context = ssl.create_default_context(cafile=self.info["ca"])

    def control(self, server, what, body=None):
        request = urllib.request.Request(f"https://{server}/__control/{what}",
                                         data=None if body is None else json.dumps(body).encode(),
                                         method="POST" if body is not None else "GET")
        with urllib.request.urlopen(request, context=self.context, timeout=30) as answer:
            return json.load(answer)

    def close(self):
        os.close(self.keepalive_w)
        self.process.wait(timeout=30)


def throttled_run(args, stack, shared, count_rejected, work):
    registry = stack.info["proxies"]["proxy_anon"]
    stack.control(registry, "reset", {})
    stack.control(registry, "config", {"rate_limit": {"per_second": args.per_second,
                                                      "retry_after": args.retry_after,
                                                      "count_rejected": count_rejected}})
    base = os.path.join(work, ("shared" if shared else "each") + ("-counted" if count_rejected
                                                                  else ""))
    sites, state = os.path.join(base, "sites"), os.path.join(base, "state")
    os.makedirs(sites)
    agent = {"stateDir": state, "sitesDir": sites, "caBundle": stack.info["ca"],
             "controlSocket": os.path.join(base, "control.sock"),
             "maxConcurrentPulls": args.sites, "maxRunningPulls": 4 * args.sites,
             "retryInitialBackoffSeconds": 1, "retryMaxBackoffSeconds": 4,
             "shareRegistryThrottle": shared, "refreshOnStart": False}
    with open(os.path.join(base, "agent.json"), "w") as f:
        json.dump(agent, f)
    for i in range(args.sites):
        site = {"properties": {"siteConfig": {
            "linuxFxVersion": f"DOCKER|{registry}/{IMAGES[i % len(IMAGES)]}"}}}
        with open(os.path.join(sites, f"site{i:02d}.json"), "w") as f:
            json.dump(site, f)
    log = open(os.path.join(base, "daemon.log"), "w")
    started = time.monotonic()
    daemon = subprocess.Popen([args.pullagent, "--config", os.path.join(base, "agent.json"),
                               "--log-level", "warn"], stdout=log, stderr=log)
    published = set()
    try:
        seconds = None
        while len(published) < args.sites:
            if time.monotonic() - started > args.timeout:
                break  # reported as not finished, with how many made it
            for i in range(args.sites):
                path = os.path.join(state, "sites", f"site{i:02d}.json")
                try:
                    if json.load(open(path)).get("phase") == "published":
                        published.add(i)
                except (OSError, ValueError):
                    pass
            time.sleep(0.05)
        else:
            seconds = time.monotonic() - started
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=60)
    requests = stack.control(registry, "stats")["requests"]
    throttled = sum(1 for r in requests if r.get("fault") == "rate_limited")
    return {"requests": len(requests), "throttled": throttled, "seconds": seconds,
            "published": len(published)}


def cache_runs(args, stack, work):
    origin = stack.info["proxies"]["proxy_token"]
    upstream = stack.info["proxies"]["cache_upstream"]
    cache = stack.info["registries"]["cache"]
    creds = f"{stack.info['token_user']}:{stack.info['token_password']}"
    hosts = os.path.join(work, "certs.d")
    os.makedirs(os.path.join(hosts, origin))
    with open(os.path.join(hosts, origin, "hosts.toml"), "w") as f:
        f.write(f'server = "https://{origin}"\nca = "{stack.info["ca"]}"\n'
                f'[host."https://{cache}"]\n  capabilities = ["pull"]\n'
                f'  ca = "{stack.info["ca"]}"\n')
    rows = []
    image = "test/cached:v1"  # Docker media types: what docker-registry 2.8's proxy can fetch
    for label, mirrored in (("origin only", False), ("cache, cold", True), ("cache, warm", True)):
        for server in (origin, upstream):
            stack.control(server, "reset", {})
        dest = tempfile.mkdtemp(dir=work)
        argv = [args.pullagent, "pull", f"{origin}/{image}", "--dest", dest, "--creds", creds,
                "--log-level", "warn"]
        argv += ["--hosts-dir", hosts] if mirrored else ["--ca", stack.info["ca"]]
        started = time.monotonic()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        seconds = time.monotonic() - started
        # What the origin served: to the agent directly, and to the cache on the agent's behalf.
        served = (stack.control(origin, "stats")["requests"] +
                  stack.control(upstream, "stats")["requests"])
        rows.append({"pull": label, "origin_requests": len(served),
                     "origin_bytes": sum(r.get("bytes", 0) for r in served), "seconds": seconds})
        shutil.rmtree(dest)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pullagent", required=True)
    parser.add_argument("--sites", type=int, default=20)
    parser.add_argument("--per-second", type=int, default=5)
    parser.add_argument("--retry-after", type=int, default=1)
    parser.add_argument("--timeout", type=int, default=120)
    args = parser.parse_args()
    args.pullagent = os.path.abspath(args.pullagent)
    work = tempfile.mkdtemp(prefix="pullagent-fleet-")
    stack = Stack(work)
    try:
        print(f"throttled: {args.sites} sites, registry allows {args.per_second} requests in "
              f"any second, then 429 with Retry-After: {args.retry_after}")
        print(f"{'refused requests':<18}{'limiter':<24}{'requests':>10}{'429s':>8}"
              f"{'all published (s)':>20}")
        for count_rejected in (False, True):
            for shared in (True, False):
                result = throttled_run(args, stack, shared, count_rejected, work)
                label = "shared (pullagent)" if shared else "per pull (containerd)"
                counted = "count" if count_rejected else "do not count"
                finished = (f"{result['seconds']:.2f}" if result["seconds"] is not None else
                            f"> {args.timeout} ({result['published']} of {args.sites})")
                print(f"{counted:<18}{label:<24}{result['requests']:>10}{result['throttled']:>8}"
                      f"{finished:>20}", flush=True)
        print("\ncache: test/cached:v1 (4.2 MB), docker-registry in proxy mode as a hosts.toml mirror")
        print(f"{'pull':<16}{'origin requests':>17}{'origin bytes':>14}{'seconds':>10}")
        for row in cache_runs(args, stack, work):
            print(f"{row['pull']:<16}{row['origin_requests']:>17}{row['origin_bytes']:>14}"
                  f"{row['seconds']:>10.2f}", flush=True)
    finally:
        stack.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
