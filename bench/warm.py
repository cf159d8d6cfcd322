"""The warm scenario of bench/bench.py: does a warm image slow a site's pull?

warmImages are pulled at low priority: a warm pull runs only while no site pull runs or waits,
and a site pull that wants to start pauses it (docs/storage.md, "Warm images"). Measured: the
time from a site's file appearing in the sites directory to its image published by the service
(the five-layer bench image, overlay storage), with no warm image, and with a warm image of
120 MB of its own (nothing shared with the site's) being pulled when the site appears. The
ratio is what the warm pull costs the site: the issue asks for at most 1.10."""
import json
import os
import signal
import statistics
import subprocess
import tarfile
import time

MB = 1000 * 1000


def random_layer(env, name, size):
    """A layer of `size` random bytes, cached beside the image's layers."""
    path = os.path.join(os.path.dirname(env.layers[0]["path"]), f"warm-{name}.tar.gz")
    marker = path + ".json"
    if os.path.exists(marker):
        return json.load(open(marker))

    def add(tar):
        import io
        data = os.urandom(size)
        info = tarfile.TarInfo(f"opt/warm/{name}.bin")
        info.size = len(data)
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(data))

    size_on_disk, diff_id = env.write_layer(path, add)
    import hashlib
    digest = "sha256:" + hashlib.sha256(open(path, "rb").read()).hexdigest()
    layer = {"path": path, "size": size_on_disk, "diff_id": diff_id, "digest": digest}
    json.dump(layer, open(marker, "w"))
    return layer


def wait_for(check, timeout=300, what="a condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    raise RuntimeError(f"bench: timed out waiting for {what}")


def ingest_bytes(state):
    ingest = os.path.join(state, "content", "ingest")
    total = 0
    if os.path.isdir(ingest):
        for name in os.listdir(ingest):
            try:
                total += os.path.getsize(os.path.join(ingest, name))
            except OSError:
                pass
    return total


def published(state, site):
    try:
        doc = json.load(open(os.path.join(state, "sites", f"{site}.json")))
    except (OSError, ValueError):
        return False
    return doc.get("phase") == "published" and isinstance(doc.get("published"), dict)


def one_run(env, warm_image):
    env.fresh()
    state, sites = f"{env.tmpfs}/state", f"{env.tmpfs}/sites"
    os.makedirs(sites)
    agent = {"stateDir": state, "sitesDir": sites, "caBundle": env.ca,
             "controlSocket": f"{env.tmpfs}/control.sock", "refreshOnStart": False,
             "keepPreviousImages": 0}
    if warm_image:
        agent["warmImages"] = [{"image": warm_image}]
    with open(f"{env.tmpfs}/agent.json", "w") as f:
        json.dump(agent, f)
    log = open(f"{env.tmpfs}/daemon.log", "w")
    daemon = subprocess.Popen([env.pullagent, "--config", f"{env.tmpfs}/agent.json",
                               "--log-format", "text"], stdout=log, stderr=subprocess.STDOUT)
    try:
        if warm_image:  # the warm pull is under way when the site appears
            wait_for(lambda: ingest_bytes(state) > 5 * MB, what="the warm pull to begin")
        site = {"properties": {"siteConfig": {
            "linuxFxVersion": f"DOCKER|{env.registry}/bench/image:v1"}}}
        started = time.monotonic()
        with open(f"{sites}/.web.json.tmp", "w") as f:
            json.dump(site, f)
        os.rename(f"{sites}/.web.json.tmp", f"{sites}/web.json")
        wait_for(lambda: published(state, "web"), what="the site to be published")
        seconds = time.monotonic() - started
        warm_done = None
        if warm_image:
            wait_for(lambda: os.path.exists(f"{state}/warm.json"), what="the warm image")
            warm_done = time.monotonic() - started
        return seconds, warm_done
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=60)
        log.close()


def warm(env):
    layers = [random_layer(env, "a", 60 * MB), random_layer(env, "b", 60 * MB)]
    env.push(layers, "v1", repo="bench/warm")
    warm_image = f"{env.registry}/bench/warm:v1"
    rows = {}
    for name, image in (("alone", None), ("beside a warm pull", warm_image)):
        samples = []
        for i in range(env.runs):
            samples.append(one_run(env, image))
            extra = f", warm image ready {samples[-1][1]:.2f} s after" if image else ""
            print(f"bench: warm, site {name} run {i + 1}: {samples[-1][0]:.2f} s{extra}",
                  flush=True)
        rows[name] = samples
    env.fresh()
    alone = statistics.median(s for s, _ in rows["alone"])
    beside = statistics.median(s for s, _ in rows["beside a warm pull"])
    warm_ready = statistics.median(w for _, w in rows["beside a warm pull"])
    return (f"warm: a site's image published by the service (median of {env.runs}), with and "
            f"without a warm image of {sum(l['size'] for l in layers) / MB:.0f} MB being pulled\n"
            f"  site alone:                  {alone:8.2f} s\n"
            f"  site beside a warm pull:     {beside:8.2f} s  ({beside / alone:.3f}x; the warm "
            f"image ready {warm_ready:.2f} s after the site appeared)\n")
