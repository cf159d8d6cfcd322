"""The disk scenario of bench/bench.py: disk over time for N redeploys, by policy.

One site redeploys REDEPLOYS times: each version is the bench image's four lower layers (the
shared base, about 780 MB unpacked) and an app layer of its own (APP_MB of random bytes). Each
policy runs alone on a fresh tmpfs of FS_MIB, whose used bytes (statvfs) are sampled every 20 ms:
after each redeploy the table gives the bytes in use once the policy has settled, and the peak
during the pull, and the last row how many whole images are left at the end. The policies:

  pullagent, no marks     the service with diskHighWatermarkPercent 100 (never under pressure):
                          what it keeps on its own (the published image, the previous one for
                          rollback, the compressed blobs)
  pullagent, HIGH/LOW     the service with diskHigh/LowWatermarkPercent HIGH/LOW
  podman, no prune        podman pull of each version, nothing removed (podman's default)
  podman + prune -a       the site's container recreated on the new image, then
                          podman image prune -a (only the image in use survives)
  kubelet-style HIGH/LOW  podman pull, the container recreated, then kubelet's image GC policy:
                          over HIGH % of the filesystem, images no container uses are removed
                          least recently used first until below LOW %. (Generous to kubelet: it
                          runs right after each pull, where kubelet checks every 5 minutes, and
                          its ages are kept, where kubelet's are forgotten by a restart.)

A pull that runs out of space is recorded as ENOSPC, and the run goes on with the next version."""
import json
import os
import signal
import subprocess
import threading
import time

import warm as warm_lib

MB = 1000 * 1000
REDEPLOYS = 12
APP_MB = 60
FS_MIB = 1700
HIGH, LOW = 70, 60


class Filesystem:
    """A tmpfs of its own, its used bytes sampled in the background: the peak since reset()."""

    def __init__(self, path, size_mib):
        self.path = path
        os.makedirs(path, exist_ok=True)
        if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mib}M", "tmpfs", path]).returncode:
            raise RuntimeError(f"bench: the disk scenario mounts a tmpfs at {path}: run as root")
        st = os.statvfs(path)
        self.total = st.f_blocks * st.f_frsize
        self.peak = 0
        self.stop = threading.Event()
        self.sampler = threading.Thread(target=self.sample, daemon=True)
        self.sampler.start()

    def used(self):
        st = os.statvfs(self.path)
        return (st.f_blocks - st.f_bfree) * st.f_frsize

    def sample(self):
        while not self.stop.is_set():
            self.peak = max(self.peak, self.used())
            time.sleep(0.02)

    def reset(self):
        self.peak = self.used()

    def settled(self, quiet=0.5, timeout=60):
        """The used bytes once they stop changing (eviction after a publish is asynchronous)."""
        deadline = time.monotonic() + timeout
        last, since = self.used(), time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.05)
            now = self.used()
            if now != last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet:
                break
        return last

    def close(self):
        self.stop.set()
        self.sampler.join()
        if subprocess.run(["umount", self.path]).returncode:
            subprocess.run(["umount", "-l", self.path], check=True)


def site_doc(image):
    return {"properties": {"siteConfig": {"linuxFxVersion": f"DOCKER|{image}"}}}


def published_image(state):
    try:
        doc = json.load(open(os.path.join(state, "sites", "web.json")))
    except (OSError, ValueError):
        return None, None
    published = doc.get("published") or {}
    return published.get("image"), doc


def run_pullagent(env, fs, images, marks):
    state, sites = f"{fs.path}/state", f"{env.tmpfs}/disk-sites"
    os.makedirs(sites)
    agent = {"stateDir": state, "sitesDir": sites, "caBundle": env.ca,
             "controlSocket": f"{env.tmpfs}/disk-control.sock", "refreshOnStart": False,
             "keepPreviousImages": 1, "diskHighWatermarkPercent": marks[0],
             "diskLowWatermarkPercent": marks[1]}
    with open(f"{env.tmpfs}/disk-agent.json", "w") as f:
        json.dump(agent, f)
    log = open(f"{env.tmpfs}/disk-daemon.log", "w")
    daemon = subprocess.Popen([env.pullagent, "--config", f"{env.tmpfs}/disk-agent.json",
                               "--log-format", "text"], stdout=log, stderr=subprocess.STDOUT)
    rows = []
    try:
        for image in images:
            fs.reset()
            with open(f"{sites}/.web.json.tmp", "w") as f:
                json.dump(site_doc(image), f)
            os.rename(f"{sites}/.web.json.tmp", f"{sites}/web.json")
            deadline = time.monotonic() + 300
            outcome = None
            while time.monotonic() < deadline:
                shown, doc = published_image(state)
                if shown == image:
                    outcome = "ok"
                    break
                error = (doc or {}).get("lastError") or {}
                if doc and doc.get("image") == image and doc.get("phase") == "failed":
                    outcome = "ENOSPC" if "space" in error.get("message", "") else "failed"
                    break
                time.sleep(0.02)
            if outcome is None:
                raise RuntimeError(f"bench: {image} was not published in 300 s "
                                   f"(see {env.tmpfs}/disk-daemon.log)")
            rows.append((fs.settled(), fs.peak, outcome))
        # What a rollback can reach: the published image and the previous ones still whole.
        _, doc = published_image(state)
        kept = 1 + sum(1 for unit in doc.get("previous", []) if all(
            os.path.isdir(os.path.join(image["path"], "rootfs")) for image in unit))
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=60)
        log.close()
    return rows, kept


class Podman:
    def __init__(self, env, root, driver):
        self.env = env
        self.base = ["podman", "--root", f"{root}/root", "--runroot", f"{env.tmpfs}/dpr",
                     "--storage-driver", driver, "--cgroup-manager", "cgroupfs",
                     "--events-backend", "file"]

    def run(self, *args, check=True):
        out = subprocess.run(self.base + list(args), capture_output=True, text=True)
        if check and out.returncode:
            raise RuntimeError(f"podman {' '.join(args)}: {out.stderr[-1500:]}")
        return out

    def pull(self, image):
        out = self.run("pull", "--quiet", "--cert-dir", self.env.certs, f"docker://{image}",
                       check=False)
        if out.returncode == 0:
            return "ok"
        if "no space left" in out.stderr.lower():
            return "ENOSPC"
        raise RuntimeError(f"podman pull {image}: {out.stderr[-1500:]}")

    def deploy(self, image):
        """The site's container, recreated on the new image (created, not run)."""
        self.run("rm", "-f", "--ignore", "site")
        self.run("create", "--name", "site", image, "/bin/sh")


def podman_driver(env, fs):
    """overlay as podman users run it; vfs (a full copy per layer) only where overlay cannot."""
    probe = Podman(env, f"{fs.path}/probe", "overlay")
    ok = probe.run("info", check=False).returncode == 0
    subprocess.run(["rm", "-rf", f"{fs.path}/probe", f"{env.tmpfs}/dpr"])
    return "overlay" if ok else "vfs"


def run_podman(env, fs, images, policy, driver):
    podman = Podman(env, f"{fs.path}/podman", driver)
    last_used = {}
    rows = []
    for step, image in enumerate(images):
        fs.reset()
        outcome = podman.pull(image)
        if outcome == "ok" and policy != "none":
            podman.deploy(image)
            last_used[image] = step
            if policy == "prune":
                podman.run("image", "prune", "-a", "-f")
            elif policy == "kubelet" and fs.used() > HIGH / 100 * fs.total:
                for old in sorted((i for i in last_used if i != image), key=last_used.get):
                    if fs.used() <= LOW / 100 * fs.total:
                        break
                    podman.run("rmi", old)
                    del last_used[old]
        rows.append((fs.settled(quiet=0.2), fs.peak, outcome))
    kept = len(podman.run("images", "--quiet").stdout.split())
    podman.run("rm", "-f", "--ignore", "site", check=False)
    return rows, kept


def disk(env):
    base = env.layers[:4]
    images = []
    for i in range(1, REDEPLOYS + 1):
        app = warm_lib.random_layer(env, f"disk-{i}", APP_MB * MB)
        env.push(base + [app], f"v{i}", repo="bench/disk")
        images.append(f"{env.registry}/bench/disk:v{i}")
    policies = [("pullagent, no marks", "pullagent", (100, 99)),
                (f"pullagent, {HIGH}/{LOW}", "pullagent", (HIGH, LOW)),
                ("podman, no prune", "none", None),
                ("podman + prune -a", "prune", None),
                (f"kubelet-style {HIGH}/{LOW}", "kubelet", None)]
    results, images_kept = {}, {}
    driver = None
    for name, kind, marks in policies:
        env.fresh()
        fs = Filesystem(f"{env.tmpfs}/disk", FS_MIB)
        try:
            if kind == "pullagent":
                rows, kept = run_pullagent(env, fs, images, marks)
            else:
                driver = driver or podman_driver(env, fs)
                rows, kept = run_podman(env, fs, images, kind, driver)
        finally:
            fs.close()
        results[name] = rows
        images_kept[name] = kept
        print(f"bench: disk, {name}: " + ", ".join(f"{u / MB:.0f}" if o == "ok" else o
                                                  for u, _, o in rows), flush=True)
    env.fresh()

    def cell(row):
        used, peak, outcome = row
        return f"{used / MB:.0f} ({peak / MB:.0f})" if outcome == "ok" else outcome

    width = 22
    lines = [f"disk: one site, {REDEPLOYS} redeploys of a {APP_MB} MB app layer over the bench "
             f"image's base, each policy on its own {FS_MIB} MiB tmpfs (podman storage: {driver}); "
             f"MB in use after each redeploy (peak during it); images: whole images left at the "
             f"end (the site's own, and what a rollback can reach)",
             "  redeploy" + "".join(f"{name:>{width}}" for name in results)]
    for step in range(REDEPLOYS):
        lines.append(f"  {step + 1:>8}" + "".join(f"{cell(rows[step]):>{width}}"
                                                  for rows in results.values()))
    lines.append("  max peak" + "".join(f"{max(p for _, p, _ in rows) / MB:>{width}.0f}"
                                         for rows in results.values()))
    lines.append(f"  {'images':>8}" + "".join(
        f"{images_kept[name]:>{width}}" for name in results))
    return "\n".join(lines) + "\n"
