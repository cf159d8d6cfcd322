"""The parallel-ranges scenario of bench/bench.py.

One image of a single large layer (200 MB that do not compress) is pulled through the test
stack's proxy, which caps each connection at 20 MB/s (the proxy's `rate` fault on every request
for the layer, as a registry or CDN capping each connection does), and once more unthrottled:

  pullagent, 4 ranges     pullagent pull --rootfs, --range-concurrency 4 (the default)
  pullagent, one stream   the same with --range-concurrency 1
  skopeo copy             skopeo copy docker:// -> oci: (download only, no unpack)

Reports the median seconds of `runs` cold pulls, the ratio to one stream, and peak RSS. The goal
of issue 28: four ranges at most 0.35 x one stream behind the capped proxy."""
import hashlib
import io
import json
import os
import random
import ssl
import statistics
import tarfile
import urllib.request

MB = 1000 * 1000
LAYER_BYTES = 200 * MB
CAP = 20 * MB  # bytes a second, each connection


def big_layer(env):
    """A single layer of LAYER_BYTES that do not compress, cached beside the image's layers."""
    path = os.path.join(os.path.dirname(env.layers[0]["path"]), "ranges-layer.tar.gz")

    def add(tar):
        data = random.Random(28).randbytes(LAYER_BYTES)
        info = tarfile.TarInfo("opt/app/payload.bin")
        info.size = len(data)
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(data))

    if not os.path.exists(path + ".json"):
        size, diff_id = env.write_layer(path, add)
        json.dump({"size": size, "diff_id": diff_id}, open(path + ".json", "w"))
    meta = json.load(open(path + ".json"))
    digest = "sha256:" + hashlib.sha256(open(path, "rb").read()).hexdigest()
    return {"path": path, "size": meta["size"], "diff_id": meta["diff_id"], "digest": digest}


def set_faults(env, faults):
    context = ssl.create_default_context(cafile=env.ca)
    request = urllib.request.Request(f"https://{env.proxy}/__control/faults",
                                     data=json.dumps(faults).encode(), method="POST")
    with urllib.request.urlopen(request, context=context) as answer:
        answer.read()


def ranges(env):
    layer = big_layer(env)
    env.push([layer], "v1", "bench/ranges")
    image = f"{env.proxy}/bench/ranges:v1"
    tools = [
        ("pullagent, 4 ranges",
         lambda: [env.pullagent, "pull", image, "--rootfs", f"{env.tmpfs}/rootfs", "--state",
                  f"{env.tmpfs}/state", "--ca", env.ca, "--log-level", "warn",
                  "--range-concurrency", "4"]),
        ("pullagent, one stream",
         lambda: [env.pullagent, "pull", image, "--rootfs", f"{env.tmpfs}/rootfs", "--state",
                  f"{env.tmpfs}/state", "--ca", env.ca, "--log-level", "warn",
                  "--range-concurrency", "1"]),
        ("skopeo copy", lambda: ["skopeo", "copy", "--src-cert-dir", env.certs,
                                 f"docker://{image}", f"oci:{env.tmpfs}/oci:v1"]),
    ]
    lines = [f"parallel ranges: one layer of {layer['size'] / MB:.0f} MB (incompressible), "
             f"median of {env.runs} cold pulls through the stack's proxy"]
    for setting, faults in (
            (f"each connection capped at {CAP / MB:.0f} MB/s",
             [{"match": layer["digest"], "times": 100000, "rate": CAP}]),
            ("unthrottled", [])):
        set_faults(env, faults)
        results = {}
        for name, command in tools:
            samples = []
            for _ in range(env.runs):
                env.fresh()
                samples.append(env.timed(command()))
            results[name] = (statistics.median(s for s, _ in samples), max(r for _, r in samples))
            print(f"bench: ranges, {setting}, {name}: {results[name][0]:.2f} s", flush=True)
        one = results["pullagent, one stream"][0]
        lines.append(f"  {setting}")
        lines.append(f"  {'tool':<24}{'seconds':>10}{'MB/s':>8}{'vs one stream':>15}"
                     f"{'peak RSS MiB':>14}")
        for name, (seconds, rss) in results.items():
            lines.append(f"  {name:<24}{seconds:>10.2f}{layer['size'] / MB / seconds:>8.0f}"
                         f"{seconds / one:>14.2f}x{rss:>14.0f}")
    set_faults(env, [])
    env.fresh()
    return "\n".join(lines) + "\n"
