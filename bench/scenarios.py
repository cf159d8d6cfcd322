"""The redeploy and shared-base scenarios of bench/bench.py.

redeploy: the five-layer image is published; then a new tag whose four lower layers are the
same and whose top (app) layer is a new 15 kB one. Timed: having the new tag published, for
pullagent over layer snapshots (overlay storage), pullagent with a plain tree per image (flat
storage, what it did before snapshots) and podman (overlay storage). Measured: the disk the
unpacked images take (du, hardlinks once), one image and both.

sites: ten tags, ten different app layers over the same four lower layers, all published
(pullagent, overlay storage): the disk they take, beside what one image takes and what the flat
layout would take (ten whole trees, computed from one: not materialised).

sharing: what reusing stored bytes costs under the reuse rules (a digest is a name, not a
proof). The image is published from one repository, then pulled again (overlay storage) from
the same repository under another tag, from another repository of the same registry (a HEAD per
blob; and strictly, `--shared-blob-proof fetch`), and from another registry holding the same
blobs (fetched again). The second pull's registry is the recording proxy of the test stack, so
its requests and the bytes it served are counted."""
import collections
import hashlib
import io
import json
import os
import ssl
import statistics
import subprocess
import tarfile
import urllib.request

Env = collections.namedtuple(
    "Env", "pullagent registry ca certs tmpfs layers runs fresh push write_layer timed proxy")
MB = 1000 * 1000


def du(*paths):
    """Bytes the paths take on disk, each inode once (du -s counts hardlinks once)."""
    present = [p for p in paths if os.path.exists(p)]
    if not present:
        return 0
    out = subprocess.run(["du", "-s", "-c", "--block-size=1"] + present, check=True,
                         capture_output=True, text=True).stdout
    return int(out.strip().splitlines()[-1].split()[0])


def app_layer(env, name):
    """A small app layer of its own (about 15 kB compressed), cached beside the image's layers."""
    path = os.path.join(os.path.dirname(env.layers[0]["path"]), f"app-{name}.tar.gz")

    def add(tar):
        for i in range(12):
            # 1280 bytes that do not compress (hashes), so the layer is about 15 kB compressed.
            text = b"".join(hashlib.sha256(f"{name}/{i}/{k}".encode()).digest() for k in range(40))
            info = tarfile.TarInfo(f"srv/app/release/{name}/{i}.bin")
            info.size = len(text)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(text))

    size, diff_id = env.write_layer(path, add)
    digest = "sha256:" + hashlib.sha256(open(path, "rb").read()).hexdigest()
    return {"path": path, "size": size, "diff_id": diff_id, "digest": digest}


def pullagent(env, tag, storage, registry=None, repo="bench/image", extra=()):
    return env.timed([env.pullagent, "pull", f"{registry or env.registry}/{repo}:{tag}", "--state",
                      f"{env.tmpfs}/state", "--ca", env.ca, "--storage", storage, "--log-level",
                      "warn"] + list(extra))


def proxy_control(env, what):
    """The recording proxy's /__control/stats or /__control/reset."""
    context = ssl.create_default_context(cafile=env.ca)
    with urllib.request.urlopen(f"https://{env.proxy}/__control/{what}", context=context) as answer:
        return json.loads(answer.read() or b"{}")


def sharing(env):
    lower = env.layers
    env.push(lower, "copy")                   # the same image under another tag
    env.push(lower, "v1", repo="bench/other")  # and in another repository
    cases = [
        ("same repository", dict(registry=env.proxy, repo="bench/image", tag="copy"), env.proxy),
        ("other repository (HEAD)", dict(registry=env.proxy, repo="bench/other", tag="v1"),
         env.proxy),
        ("other repository (strict)", dict(registry=env.proxy, repo="bench/other", tag="v1",
                                           extra=("--shared-blob-proof", "fetch")), env.proxy),
        ("other registry", dict(registry=env.proxy, repo="bench/image", tag="v1"), env.registry),
    ]
    rows = []
    for name, case, first_registry in cases:
        samples, counted = [], None
        for i in range(env.runs):
            env.fresh()
            pullagent(env, "v1", "overlay", registry=first_registry)
            proxy_control(env, "reset")
            samples.append(pullagent(env, case["tag"], "overlay", registry=case["registry"],
                                     repo=case["repo"], extra=case.get("extra", ())))
            requests = [r for r in proxy_control(env, "stats")["requests"] if "/blobs/" in r["path"]]
            counted = (sum(1 for r in requests if r["method"] == "HEAD"),
                       sum(1 for r in requests if r["method"] == "GET"),
                       sum(r.get("bytes", 0) for r in requests))
            print(f"bench: sharing, {name} run {i + 1}: {samples[-1][0]:.2f} s", flush=True)
        rows.append((name, statistics.median(s for s, _ in samples), max(r for _, r in samples),
                     *counted))
    env.fresh()
    lines = [f"sharing: the image published, then pulled again (overlay storage); median of "
             f"{env.runs}",
             f"{'second pull from':<28}{'seconds':>9}{'peak RSS MiB':>14}{'blob HEADs':>12}"
             f"{'blob GETs':>11}{'MB served':>11}"]
    for name, seconds, rss, heads, gets, served in rows:
        lines.append(f"{name:<28}{seconds:>9.2f}{rss:>14.0f}{heads:>12}{gets:>11}"
                     f"{served / MB:>11.1f}")
    return "\n".join(lines) + "\n"


def podman(env, tag):
    return env.timed(["podman", "--root", f"{env.tmpfs}/podman/root", "--runroot",
                      f"{env.tmpfs}/podman/run", "--storage-driver", "overlay",
                      "--cgroup-manager", "cgroupfs", "--events-backend", "file", "pull",
                      "--quiet", "--cert-dir", env.certs, f"docker://{env.registry}/bench/image:{tag}"])


def unpacked_disk(env, tool):
    if tool == "podman":
        return du(f"{env.tmpfs}/podman/root/overlay")
    return du(f"{env.tmpfs}/state/images", f"{env.tmpfs}/state/snapshots")


def redeploy(env):
    lower = env.layers[:4]
    app = app_layer(env, "redeploy")
    env.push(lower + [app], "v2")
    tools = {"pullagent (snapshots)": lambda tag: pullagent(env, tag, "overlay"),
             "pullagent (flat trees)": lambda tag: pullagent(env, tag, "flat"),
             "podman pull (overlay)": lambda tag: podman(env, tag)}
    rows = []
    for name, run in tools.items():
        samples, disk_one, disk_both = [], 0, 0
        for i in range(env.runs):
            env.fresh()
            run("v1")
            disk_one = unpacked_disk(env, "podman" if name.startswith("podman") else "pullagent")
            samples.append(run("v2"))
            disk_both = unpacked_disk(env, "podman" if name.startswith("podman") else "pullagent")
            print(f"bench: redeploy {name} run {i + 1}: {samples[-1][0]:.2f} s, "
                  f"peak RSS {samples[-1][1]:.0f} MiB", flush=True)
        rows.append((name, statistics.median(s for s, _ in samples), max(r for _, r in samples),
                     disk_one, disk_both))
    env.fresh()
    podman_seconds = next((r[1] for r in rows if r[0].startswith("podman")), None)
    lines = [f"redeploy: same four lower layers, a new app layer ({app['size']} bytes compressed); "
             f"median of {env.runs}",
             f"{'tool':<26}{'seconds':>9}{'vs podman':>11}{'peak RSS MiB':>14}"
             f"{'disk 1 image MB':>17}{'disk both MB':>14}{'both/one':>10}"]
    for name, seconds, rss, one, both in rows:
        ratio = f"{seconds / podman_seconds:>10.2f}x" if podman_seconds else f"{'-':>11}"
        lines.append(f"{name:<26}{seconds:>9.2f}{ratio}{rss:>14.0f}{one / MB:>17.0f}"
                     f"{both / MB:>14.0f}{both / one if one else 0:>9.3f}x")
    return "\n".join(lines) + "\n"


def sites(env):
    lower = env.layers[:4]
    tags = [f"site{i}" for i in range(10)]
    apps = []
    for tag in tags:
        app = app_layer(env, tag)
        apps.append(app)
        env.push(lower + [app], tag)
    env.fresh()
    pullagent(env, tags[0], "flat")
    flat_one = du(f"{env.tmpfs}/state/images")
    env.fresh()
    pullagent(env, tags[0], "overlay")
    one = unpacked_disk(env, "pullagent")
    for tag in tags[1:]:
        pullagent(env, tag, "overlay")
    ten = unpacked_disk(env, "pullagent")
    env.fresh()
    app_bytes = sum(a["size"] for a in apps) / len(apps)
    return (f"sites: ten images over one shared base, ten app layers (about {app_bytes / 1000:.0f} kB "
            f"compressed each)\n"
            f"  one image (snapshots):       {one / MB:10.1f} MB\n"
            f"  ten images (snapshots):      {ten / MB:10.1f} MB  ({ten / one:.3f}x one image)\n"
            f"  ten images (flat, computed): {10 * flat_one / MB:10.1f} MB  (10 x {flat_one / MB:.1f} MB)\n")
