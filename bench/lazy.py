"""The lazy-pulling scenario of bench/bench.py (issue 28): how soon is a site ready?

The bench image is converted to eStargz by Debian's `ctr-remote image convert --estargz --oci`,
through Debian's containerd on a private socket (its own root, state and socket in a scratch
directory; the converted blobs are cached in bench/.cache/estargz/ so later runs push them without
containerd), and pushed to the stack's registry. The service then publishes a site of that image
through the stack's proxy, as a 100 Mbit/s link (the proxy's `link_rate`: every connection shares
it) and unthrottled, once pulling whole (`lazyPulling` off, overlay storage) and once lazily
(`lazyPulling` estargz); and lazily once more, the image converted with the working set's files
prioritized (`--estargz-record-in`, the record `ctr-remote optimize` makes of what an entrypoint
reads: they go before the prefetch landmark, and come in one request before the site is
published). Each run, from the site's file appearing:

  published   the service says the site is published
  ready       a startup working set has been read through the mounted rootfs (`pullagent mount`):
              the entrypoint, its libraries, configuration files and more libraries, about 5 % of
              the image's bytes (T_ready)
  everything  every file of the rootfs read (a read-heavy start)
  promoted    lazily: the fill done, every layer an ordinary snapshot

and the bytes the proxy sent for blobs until then, against the compressed image. Goals of
issue 28: T_ready at most 20 % of the whole pull's at 100 Mbit/s and 50 % unthrottled; bytes at
most 1.05 x the compressed image; reading everything at most 1.3 x slower than whole."""
import gzip
import hashlib
import json
import os
import random
import shutil
import signal
import ssl
import statistics
import subprocess
import tarfile
import tempfile
import time
import urllib.request

import images as image_lib

MB = 1000 * 1000
LINK = 100 * 1000 * 1000 // 8  # 100 Mbit/s in bytes a second
REPO = "bench/image-estargz"
PRIORITIZED_REPO = "bench/image-estargz-prioritized"


def wait_for(check, timeout=600, what="a condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.01)
    raise RuntimeError(f"bench: timed out waiting for {what}")


def registry_get(env, path, accept=None):
    context = ssl.create_default_context(cafile=env.ca)
    request = urllib.request.Request(f"https://{env.registry}/v2/{path}")
    if accept:
        request.add_header("Accept", accept)
    with urllib.request.urlopen(request, context=context) as answer:
        return answer.read()


def convert(env, cache, repo=REPO, record=None):
    """Converts the pushed bench image with ctr-remote through a private containerd, to `repo`
    (with `record`, a `ctr-remote optimize --record-out` file: its files go first, before the
    prefetch landmark); keeps the manifest, config and layer blobs in `cache`."""
    marker = os.path.join(cache, "manifest.json")
    if os.path.exists(marker):
        return
    scratch = tempfile.mkdtemp(prefix="pullagent-bench-containerd-")
    socket_path = os.path.join(scratch, "containerd.sock")
    with open(os.path.join(scratch, "config.toml"), "w") as f:
        f.write(f'version = 2\nroot = "{scratch}/root"\nstate = "{scratch}/state"\n'
                f'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
                f'[grpc]\n  address = "{socket_path}"\n')
    hosts = os.path.join(scratch, "hosts", env.registry)
    os.makedirs(hosts)
    with open(os.path.join(hosts, "hosts.toml"), "w") as f:
        f.write(f'server = "https://{env.registry}"\n[host."https://{env.registry}"]\n'
                f'  capabilities = ["pull", "resolve", "push"]\n  ca = "{env.ca}"\n')
    log = open(os.path.join(scratch, "containerd.log"), "w")
    daemon = subprocess.Popen(["containerd", "--config", os.path.join(scratch, "config.toml")],
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: os.path.exists(socket_path), 30, "containerd to start")
        ctr = ["-a", socket_path, "-n", "bench"]
        source, target = f"{env.registry}/bench/image:v1", f"{env.registry}/{repo}:v1"
        prioritized = ["--estargz-record-in", record] if record else []
        started = time.monotonic()
        for command in (["ctr"] + ctr + ["content", "fetch", "--hosts-dir",
                                         os.path.join(scratch, "hosts"), source],
                        ["ctr-remote"] + ctr + ["images", "convert", "--estargz", "--oci"] +
                        prioritized + [source, target],
                        ["ctr-remote"] + ctr + ["images", "push", "--hosts-dir",
                                                os.path.join(scratch, "hosts"), target]):
            out = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                 text=True)
            if out.returncode != 0:
                raise RuntimeError(f"{' '.join(command[:5])} failed:\n{out.stderr[-2000:]}")
        print(f"bench: ctr-remote converted the image to eStargz in "
              f"{time.monotonic() - started:.0f} s", flush=True)
    finally:
        daemon.terminate()
        daemon.wait()
        log.close()
        subprocess.run(["umount", "-R", f"{scratch}/state"], stderr=subprocess.DEVNULL)
        shutil.rmtree(scratch, ignore_errors=True)
    # Keep what was pushed, so the next run pushes the same bytes without containerd.
    os.makedirs(cache, exist_ok=True)
    manifest = registry_get(env, f"{repo}/manifests/v1", image_lib.OCI_MANIFEST)
    doc = json.loads(manifest)
    for blob in [doc["config"]] + doc["layers"]:
        with open(os.path.join(cache, blob["digest"].split(":")[1]), "wb") as f:
            f.write(registry_get(env, f"{repo}/blobs/{blob['digest']}"))
    with open(marker, "wb") as f:
        f.write(manifest)


def push_converted(env, cache, repo=REPO):
    manifest = open(os.path.join(cache, "manifest.json"), "rb").read()
    doc = json.loads(manifest)
    pusher = image_lib.Pusher(f"https://{env.registry}", env.ca, lambda repo: None)
    for blob in [doc["config"]] + doc["layers"]:
        pusher.push_blob(repo, open(os.path.join(cache, blob["digest"].split(":")[1]), "rb").read())
    pusher.push_manifest(repo, "v1", manifest, image_lib.OCI_MANIFEST)
    lazy_layers = sum(1 for l in doc["layers"] if "containerd.io/snapshot/stargz/toc.digest"
                      in l.get("annotations", {}))
    return sum(l["size"] for l in doc["layers"]), len(doc["layers"]), lazy_layers


def listing(env):
    """Regular files of the image (path -> size), the upper layer's winning; cached."""
    path = os.path.join(os.path.dirname(env.layers[0]["path"]), "listing.json")
    if os.path.exists(path):
        return json.load(open(path))
    files = {}
    for index, layer in enumerate(env.layers):
        with gzip.open(layer["path"], "rb") as raw, tarfile.open(fileobj=raw, mode="r|") as tar:
            for member in tar:
                if member.isfile():
                    files[member.name] = [member.size, index]
                else:
                    files.pop(member.name, None)
    json.dump(files, open(path, "w"))
    return files


def working_set(env, files):
    """The startup working set: an entrypoint from the image's /usr/bin with the libraries the
    dynamic linker loads for it, 50 configuration files, then more shared libraries (a runtime
    loading its modules) until about 5 % of the image's bytes."""
    total = sum(size for size, _ in files.values())
    budget = total * 5 // 100
    chosen = []

    def take(name):
        if name in files and name not in chosen:
            chosen.append(name)

    app = len(env.layers) - 1
    binaries = sorted((n for n, (s, i) in files.items() if i == app and n.startswith("usr/bin/")),
                      key=lambda n: -files[n][0])
    for name in binaries:
        out = subprocess.run(["ldd", "/" + name], capture_output=True, text=True)
        libraries = [os.path.realpath(part).lstrip("/") for line in out.stdout.splitlines()
                     for part in line.split() if part.startswith("/")]
        present = [l for l in libraries if l in files]
        if out.returncode == 0 and len(present) >= 5:
            take(name)
            for library in present:
                take(library)
            break
    for name in sorted(n for n in files if n.startswith("srv/app/conf/00/"))[:50]:
        take(name)
    modules = sorted(n for n in files if n.startswith("usr/lib/x86_64-linux-gnu/") and ".so" in n)
    random.Random(28).shuffle(modules)
    for name in modules:
        if sum(files[n][0] for n in chosen) + files[name][0] <= budget:
            take(name)
    return chosen, sum(files[n][0] for n in chosen), total


def read_files(root, names):
    for name in names:
        with open(os.path.join(root, name), "rb") as f:
            while f.read(1 << 20):
                pass


def read_everything(root):
    count = 0
    for top, _, names in os.walk(root):
        for name in names:
            path = os.path.join(top, name)
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as f:
                    while f.read(1 << 20):
                        pass
                count += 1
    return count


def proxy(env, what, body=None):
    context = ssl.create_default_context(cafile=env.ca)
    request = urllib.request.Request(f"https://{env.proxy}/__control/{what}",
                                     data=json.dumps(body).encode() if body is not None else b"",
                                     method="POST")
    with urllib.request.urlopen(request, context=context) as answer:
        return json.loads(answer.read() or b"{}")


def blob_requests(env):
    """The bytes the proxy sent for blobs, and the number of requests."""
    requests = [r for r in proxy(env, "stats")["requests"] if "/blobs/" in r["path"]]
    if os.environ.get("BENCH_LAZY_REQUESTS"):  # where to keep them, to see how reads went
        json.dump(requests, open(os.environ["BENCH_LAZY_REQUESTS"], "w"))
    return sum(r.get("bytes", 0) for r in requests), len(requests)


def site_published(state):
    try:
        doc = json.load(open(os.path.join(state, "sites", "web.json")))
    except (OSError, ValueError):
        return None
    if doc.get("phase") == "published" and isinstance(doc.get("published"), dict):
        return doc["published"]["path"]
    return None


def promoted(image_dir):
    try:
        layers = json.load(open(os.path.join(image_dir, "rootfs-mounts.json")))["layers"]
    except (OSError, ValueError, KeyError):
        return False
    return not any(layer.get("inPlace") for layer in layers)


def one_run(env, lazily, link_rate, names, repo=REPO):
    env.fresh()
    proxy(env, "reset")
    proxy(env, "config", {"link_rate": link_rate})
    state, sites, target = f"{env.tmpfs}/state", f"{env.tmpfs}/sites", f"{env.tmpfs}/rootfs"
    os.makedirs(sites)
    os.makedirs(target)
    agent = {"stateDir": state, "sitesDir": sites, "caBundle": env.ca,
             "controlSocket": f"{env.tmpfs}/control.sock", "refreshOnStart": False,
             "keepPreviousImages": 0, "storage": "overlay",
             "lazyPulling": "estargz" if lazily else "off"}
    with open(f"{env.tmpfs}/agent.json", "w") as f:
        json.dump(agent, f)
    log = open(f"{env.tmpfs}/daemon.log", "w")
    daemon = subprocess.Popen([env.pullagent, "--config", f"{env.tmpfs}/agent.json",
                               "--log-format", "text"], stdout=log, stderr=subprocess.STDOUT)
    mounted = False
    try:
        site = {"properties": {"siteConfig": {"linuxFxVersion": f"DOCKER|{env.proxy}/{repo}:v1"}}}
        started = time.monotonic()
        with open(f"{sites}/.web.json.tmp", "w") as f:
            json.dump(site, f)
        os.rename(f"{sites}/.web.json.tmp", f"{sites}/web.json")
        image_dir = wait_for(lambda: site_published(state), what="the site to be published")
        result = {"published": time.monotonic() - started}
        subprocess.run([env.pullagent, "mount", image_dir, target, "--state", state,
                        "--log-level", "warn"], check=True)
        mounted = True
        read_files(target, names)
        result["ready"] = time.monotonic() - started
        read_everything(target)
        result["everything"] = time.monotonic() - started
        if lazily:
            wait_for(lambda: promoted(image_dir), what="the lazy layers to be promoted")
            result["promoted"] = time.monotonic() - started
        result["bytes"], result["requests"] = blob_requests(env)
        with open(f"/proc/{daemon.pid}/status") as f:
            peak = [l for l in f if l.startswith("VmHWM:")][0]
        result["rss"] = int(peak.split()[1]) / 1024
        return result
    except Exception:
        log.flush()
        print(open(f"{env.tmpfs}/daemon.log").read()[-3000:])
        raise
    finally:
        if mounted:
            subprocess.run([env.pullagent, "unmount", target, "--log-level", "warn"])
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=60)
        log.close()
        proxy(env, "config", {"link_rate": None})


def lazy(env):
    cache = os.path.join(os.path.dirname(env.layers[0]["path"]), "estargz")
    convert(env, cache)
    compressed, layer_count, lazy_layers = push_converted(env, cache)
    files = listing(env)
    names, set_bytes, total = working_set(env, files)
    print(f"bench: lazy, working set {len(names)} files, {set_bytes / MB:.0f} MB of "
          f"{total / MB:.0f} MB", flush=True)
    # The same image with the working set prioritized, as `ctr-remote optimize` records what an
    # entrypoint reads: a record file of its paths, given to the conversion.
    prioritized_cache = cache + "-prioritized"
    record = os.path.join(os.path.dirname(cache), "working-set.record")
    with open(record, "w") as f:
        for name in names:
            f.write(json.dumps({"path": name}) + "\n")
    convert(env, prioritized_cache, PRIORITIZED_REPO, record)
    push_converted(env, prioritized_cache, PRIORITIZED_REPO)
    modes = {"whole": (False, REPO), "lazy": (True, REPO),
             "lazy, prioritized": (True, PRIORITIZED_REPO)}
    rows = {}
    for setting, rate in (("100 Mbit/s", LINK), ("unthrottled", None)):
        for mode, (lazily, repo) in modes.items():
            samples = []
            for i in range(env.runs):
                samples.append(one_run(env, lazily, rate, names, repo))
                shown = ", ".join(f"{k} {v:.2f}" for k, v in samples[-1].items()
                                  if k not in ("bytes", "rss", "requests"))
                print(f"bench: lazy, {mode} at {setting} run {i + 1}: {shown} s, "
                      f"{samples[-1]['bytes'] / MB:.0f} MB fetched in "
                      f"{samples[-1]['requests']} requests", flush=True)
            rows[(setting, mode)] = {k: statistics.median(s[k] for s in samples)
                                     for k in samples[0]}
            rows[(setting, mode)]["rss"] = max(s["rss"] for s in samples)
    env.fresh()
    lines = [f"lazy pulling: the bench image as eStargz (ctr-remote, {layer_count} layers, "
             f"{lazy_layers} with a TOC, {compressed / MB:.0f} MB compressed, {total / MB:.0f} MB "
             f"of files), a site published by the service through the stack's proxy; working set "
             f"{len(names)} files, {set_bytes / MB:.0f} MB ({100 * set_bytes / total:.1f} %); "
             f"median of {env.runs}, seconds from the site's file appearing"]
    lines.append(f"  {'':<32}{'published':>10}{'ready':>9}{'vs whole':>10}{'everything':>12}"
                 f"{'vs whole':>10}{'promoted':>10}{'fetched':>9}{'peak RSS':>10}")
    for setting in ("100 Mbit/s", "unthrottled"):
        whole = rows[(setting, "whole")]
        for mode in modes:
            row = rows[(setting, mode)]
            lines.append(
                f"  {mode + ', ' + setting:<32}{row['published']:>10.2f}{row['ready']:>9.2f}"
                f"{row['ready'] / whole['ready']:>9.2f}x{row['everything']:>12.2f}"
                f"{row['everything'] / whole['everything']:>9.2f}x"
                f"{row.get('promoted', row['published']):>10.2f}"
                f"{row['bytes'] / compressed:>8.2f}x{row['rss']:>7.0f} MiB")
    return "\n".join(lines) + "\n"
