#!/usr/bin/env python3
"""Pull-and-unpack benchmark: pullagent against the tools users pick today, side by side.

Builds (once, cached) a five-layer image of about 800 MB uncompressed with mixed content - real
OS files from the host's /usr, large incompressible files, tens of thousands of small files -
pushes it to the local TLS registry of tests/support/stack.py, then times "pull and unpack to a
root filesystem" on a tmpfs, cold (empty store) every run, median of N runs:

  pullagent        pullagent pull --rootfs (download, verify, unpack, publish)
  pullagent-snap   pullagent pull --state: each layer into its snapshot, the image composed
  skopeo+umoci     skopeo copy docker:// -> oci: , then umoci unpack
  podman           podman pull into overlay storage on the same tmpfs (vfs if overlay fails)
  gzip -dc         just decompressing the same layers to /dev/null (the floor to beat)

Reports seconds, MB/s of uncompressed content, ratios and peak RSS (/usr/bin/time).

More scenarios follow the cold pull (bench/scenarios.py, bench/warm.py):
  redeploy   the image published, then a new tag with the same four lower layers and a new
             15 kB app layer: time to have it published, disk for both images
  sites      ten images, ten different app layers over the shared base: disk for all ten
  sharing    what reusing stored bytes costs under the reuse rules
  warm       the service publishing a site's image alone, and while a warm image is pulled
  disk       disk over time for a site's redeploys: pullagent with and without watermarks,
             podman with and without image prune, a kubelet-style image GC (bench/disk.py)
  ranges     one 200 MB layer behind a proxy capping each connection at 20 MB/s, and
             unthrottled: four ranges against one stream and skopeo (bench/ranges.py)
  lazy       the image converted to eStargz by ctr-remote, published by the service whole and
             lazily, over a 100 Mbit/s link and unthrottled: when a startup working set has
             been read, when everything has, bytes fetched (bench/lazy.py)"""
import argparse
import gzip
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))
import images as image_lib  # noqa: E402
import scenarios as scenario_lib  # noqa: E402
import warm as warm_lib  # noqa: E402
import disk as disk_lib  # noqa: E402
import ranges as ranges_lib  # noqa: E402
import lazy as lazy_lib  # noqa: E402

CACHE_VERSION = "v2"  # v2: every layer holds its parent directories
MB = 1000 * 1000


def walk_limited(top, budget):
    picked, total = [], 0
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames.sort()
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            size = os.path.getsize(path)
            if total + size > budget:
                return picked
            picked.append(path)
            total += size
    return picked


class WithParents:
    """Adds to a tar the parent directories of each member before it, once, as image builders
    write layers (docker build, BuildKit): a layer then applies on its own."""

    def __init__(self, tar):
        self.tar = tar
        self.dirs = set()

    def parents(self, name):
        parts = name.strip("/").split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in self.dirs:
                self.dirs.add(d)
                info = tarfile.TarInfo(d)
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                info.mtime = 1700000000
                self.tar.addfile(info)

    def add(self, path, arcname, recursive=False):
        self.parents(arcname)
        self.tar.add(path, arcname=arcname, recursive=recursive)

    def addfile(self, info, fileobj=None):
        self.parents(info.name)
        self.tar.addfile(info, fileobj)


def write_layer(path, add_members):
    """Writes a gzip'ed tar (level 6, as docker push does) and returns (size, diff_id)."""
    hasher = hashlib.sha256()

    class HashingWriter:
        def __init__(self, inner):
            self.inner = inner

        def write(self, data):
            hasher.update(data)
            return self.inner.write(data)

        def flush(self):
            self.inner.flush()

    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0) as gz:
        with tarfile.open(fileobj=HashingWriter(gz), mode="w|", format=tarfile.PAX_FORMAT) as tar:
            add_members(WithParents(tar))
    return os.path.getsize(path), "sha256:" + hasher.hexdigest()


def build_image(cache):
    os.makedirs(cache, exist_ok=True)
    marker = os.path.join(cache, f"image-{CACHE_VERSION}.json")
    if os.path.exists(marker):
        return json.load(open(marker))

    def host_tree(top, budget):
        def add(tar):
            for path in walk_limited(top, budget):
                tar.add(path, arcname=path.lstrip("/"), recursive=False)
        return add

    def random_files(tar):
        for i in range(3):
            data = os.urandom(50 * MB)
            info = tarfile.TarInfo(f"opt/data/blob{i}.bin")
            info.size = len(data)
            info.mode = 0o644
            import io
            tar.addfile(info, io.BytesIO(data))

    def small_files(tar):
        import io
        for i in range(25000):
            text = (f"config entry {i}\n" * (20 + i % 200)).encode()
            info = tarfile.TarInfo(f"srv/app/conf/{i % 100:02d}/{i}.conf")
            info.size = len(text)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(text))

    plan = [
        ("os-lib", host_tree("/usr/lib/x86_64-linux-gnu", 280 * MB)),
        ("os-share", host_tree("/usr/share", 250 * MB)),
        ("random", random_files),
        ("small-files", small_files),
        ("app", host_tree("/usr/bin", 40 * MB)),
    ]
    layers = []
    for name, add in plan:
        path = os.path.join(cache, f"{name}.tar.gz")
        print(f"bench: building layer {name}", flush=True)
        size, diff_id = write_layer(path, add)
        digest = "sha256:" + hashlib.sha256(open(path, "rb").read()).hexdigest()
        layers.append({"path": path, "size": size, "diff_id": diff_id, "digest": digest})
    json.dump(layers, open(marker, "w"), indent=2)
    return layers


def push_image(layers, registry, ca, tag="v1", repo="bench/image"):
    pusher = image_lib.Pusher(f"https://{registry}", ca, lambda repo: None)
    config = {"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/sh"]},
              "rootfs": {"type": "layers", "diff_ids": [l["diff_id"] for l in layers]}}
    config_bytes = json.dumps(config).encode()
    pusher.push_blob(repo, config_bytes)
    for layer in layers:
        pusher.push_blob(repo, open(layer["path"], "rb").read())
    manifest = {"schemaVersion": 2, "mediaType": image_lib.OCI_MANIFEST,
                "config": {"mediaType": image_lib.OCI_CONFIG,
                           "digest": image_lib.digest_of(config_bytes), "size": len(config_bytes)},
                "layers": [{"mediaType": image_lib.OCI_LAYER_GZIP, "digest": l["digest"],
                            "size": l["size"]} for l in layers]}
    pusher.push_manifest(repo, tag, json.dumps(manifest).encode(), image_lib.OCI_MANIFEST)


def timed(command, cwd=None):
    """Runs under /usr/bin/time; returns (seconds, peak RSS in MiB)."""
    out = subprocess.run(["/usr/bin/time", "-f", "BENCHTIME %e %M"] + command, cwd=cwd,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{command[0]} failed:\n{out.stderr[-2000:]}")
    line = [l for l in out.stderr.splitlines() if l.startswith("BENCHTIME")][-1]
    _, seconds, rss_kb = line.split()
    return float(seconds), int(rss_kb) / 1024


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pullagent", default=os.path.join(ROOT, "build/release/agent/pullagent"))
    parser.add_argument("--cache", default=os.path.join(ROOT, "bench/.cache"))
    parser.add_argument("--tools", default="pullagent,pullagent-snap,skopeo+umoci,podman,gzip",
                        help="comma-separated subset of: pullagent, pullagent-snap, "
                             "skopeo+umoci, podman, gzip")
    parser.add_argument("--scenarios", default="cold,redeploy,sites,sharing,warm,disk,ranges,lazy",
                        help="comma-separated subset of: cold, redeploy, sites, sharing, warm, "
                             "disk, ranges, lazy")
    args = parser.parse_args()
    scenarios = args.scenarios.split(",")

    layers = build_image(args.cache)
    uncompressed = 0
    for layer in layers:
        with gzip.open(layer["path"], "rb") as f:
            while chunk := f.read(1 << 22):
                uncompressed += len(chunk)
    compressed = sum(l["size"] for l in layers)

    work = tempfile.mkdtemp(prefix="pullagent-bench-")
    tmpfs = os.path.join(work, "tmpfs")
    os.makedirs(tmpfs)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8g", "tmpfs", tmpfs]).returncode == 0
    keepalive_r, keepalive_w = os.pipe()
    stack = subprocess.Popen([sys.executable, os.path.join(ROOT, "tests/support/stack.py"),
                              "--dir", os.path.join(work, "stack"), "--no-push"],
                             stdin=keepalive_r, stdout=subprocess.PIPE, text=True)
    try:
        if stack.stdout.readline().strip() != "READY":
            raise RuntimeError("the registry stack did not start")
        info = json.load(open(os.path.join(work, "stack", "stack.json")))
        registry, ca = info["registries"]["anon"], info["ca"]
        print("bench: pushing the image", flush=True)
        push_image(layers, registry, ca)
        certs = os.path.join(work, "certs")
        os.makedirs(certs)
        shutil.copy(ca, os.path.join(certs, "ca.crt"))
        image = f"{registry}/bench/image:v1"

        def fresh():
            for name in os.listdir(tmpfs):
                subprocess.run(["rm", "-rf", os.path.join(tmpfs, name)], check=True)

        def run_pullagent():
            fresh()
            return [timed([args.pullagent, "pull", image, "--state", f"{tmpfs}/state", "--rootfs",
                           f"{tmpfs}/rootfs", "--ca", ca, "--log-level", "warn"])]

        def run_pullagent_snapshots():
            fresh()
            return [timed([args.pullagent, "pull", image, "--state", f"{tmpfs}/state", "--storage",
                           "overlay", "--ca", ca, "--log-level", "warn"])]

        def run_skopeo_umoci():
            fresh()
            return [timed(["skopeo", "copy", "--src-cert-dir", certs, f"docker://{image}",
                           f"oci:{tmpfs}/oci:v1"]),
                    timed(["umoci", "unpack", "--image", f"{tmpfs}/oci:v1", f"{tmpfs}/bundle"])]

        podman_driver = []

        def run_podman():
            fresh()
            # Its own storage on the tmpfs, nothing from the host's; overlay as podman users
            # run it, vfs (a full copy per layer) only when overlay cannot mount here.
            def pull(driver):
                return timed(["podman", "--root", f"{tmpfs}/podman/root", "--runroot",
                              f"{tmpfs}/podman/run", "--storage-driver", driver,
                              "--cgroup-manager", "cgroupfs", "--events-backend", "file",
                              "pull", "--quiet", "--cert-dir", certs, f"docker://{image}"])
            if not podman_driver:
                try:
                    result = pull("overlay")
                    podman_driver.append("overlay")
                    return [result]
                except RuntimeError:
                    fresh()
                    podman_driver.append("vfs")
            return [pull(podman_driver[0])]

        def run_gzip():
            return [timed(["sh", "-c", "gzip -dc " + " ".join(l["path"] for l in layers) +
                           " > /dev/null"])]

        wanted = args.tools.split(",") if "cold" in scenarios else []
        tools = [(name, run) for key, name, run in (
            ("pullagent", "pullagent", run_pullagent),
            ("pullagent-snap", "pullagent snapshots", run_pullagent_snapshots),
            ("skopeo+umoci", "skopeo+umoci", run_skopeo_umoci),
            ("podman", "podman pull", run_podman),
            ("gzip", "gzip -dc (floor)", run_gzip)) if key in wanted]
        results = {}
        for name, run in tools:
            samples = []
            for i in range(args.runs):
                steps = run()
                samples.append((sum(s for s, _ in steps), max(r for _, r in steps)))
                print(f"bench: {name} run {i + 1}: {samples[-1][0]:.2f} s, "
                      f"peak RSS {samples[-1][1]:.0f} MiB", flush=True)
            results[name] = (statistics.median(s for s, _ in samples), max(r for _, r in samples))
        fresh()
        env = scenario_lib.Env(args.pullagent, registry, ca, certs, tmpfs, layers, args.runs, fresh,
                               lambda app_layers, tag, repo="bench/image":
                                   push_image(app_layers, registry, ca, tag, repo),
                               write_layer, timed, info["proxies"]["proxy_anon"])
        later = [scenario_lib.redeploy(env) if "redeploy" in scenarios else "",
                 scenario_lib.sites(env) if "sites" in scenarios else "",
                 scenario_lib.sharing(env) if "sharing" in scenarios else "",
                 warm_lib.warm(env) if "warm" in scenarios else "",
                 disk_lib.disk(env) if "disk" in scenarios else "",
                 ranges_lib.ranges(env) if "ranges" in scenarios else "",
                 lazy_lib.lazy(env) if "lazy" in scenarios else ""]
    finally:
        os.close(keepalive_w)
        stack.terminate()
        stack.wait()
        if mounted:
            subprocess.run(["umount", tmpfs])
        shutil.rmtree(work, ignore_errors=True)

    print()
    for report in later:
        if report:
            print(report)
    if not results:
        return
    ours = results.get("pullagent", next(iter(results.values())))[0]
    print(f"image: {len(layers)} layers, {compressed / MB:.0f} MB compressed, "
          f"{uncompressed / MB:.0f} MB uncompressed; target {'tmpfs' if mounted else 'disk'}; "
          f"median of {args.runs} cold runs")
    print(f"{'tool':<20}{'seconds':>10}{'MB/s':>10}{'vs pullagent':>14}{'peak RSS MiB':>14}")
    for name, (seconds, rss) in results.items():
        print(f"{name:<20}{seconds:>10.2f}{uncompressed / MB / seconds:>10.0f}"
              f"{seconds / ours:>13.2f}x{rss:>14.0f}")


if __name__ == "__main__":
    main()
