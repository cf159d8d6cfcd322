"""Deterministic test images (layers generated from a seed) and a pusher speaking the registry
API, so that tests know every digest in advance and images are identical on every run."""
import gzip
import hashlib
import http.client
import io
import json
import ssl
import tarfile
import threading
import urllib.parse

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def digest_of(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def pseudo_random(seed, size):
    """Incompressible but reproducible bytes."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


def make_layer(seed, files):
    """files: list of (path, size, kind) with kind 'random' or 'text'. Returns (blob, diff_id)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = set()
        for path, _, _ in files:
            parts = path.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    info = tarfile.TarInfo(d)
                    info.type = tarfile.DIRTYPE
                    info.mode = 0o755
                    info.mtime = 1700000000
                    tar.addfile(info)
        for path, size, kind in files:
            if kind == "random":
                data = pseudo_random(f"{seed}/{path}", size)
            else:
                data = (f"{seed} {path}\n" * (size // 20 + 1)).encode()[:size]
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 1700000000
            tar.addfile(info, io.BytesIO(data))
    tar_bytes = raw.getvalue()
    compressed = io.BytesIO()
    with gzip.GzipFile(fileobj=compressed, mode="wb", mtime=0, compresslevel=6) as gz:
        gz.write(tar_bytes)
    return compressed.getvalue(), digest_of(tar_bytes)


def make_tree_layer(entries):
    """A layer from explicit tar members: (name, kind, extra) with kind file/dir/symlink/
    hardlink/chardev/fifo and extra a dict (content, mode, uid, gid, target, major, minor,
    xattrs). Returns (blob, diff_id)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, extra in entries:
            info = tarfile.TarInfo(name)
            info.mtime = extra.get("mtime", 1700000000)
            info.uid = extra.get("uid", 0)
            info.gid = extra.get("gid", 0)
            data = None
            if kind == "file":
                data = extra.get("content", b"")
                info.size = len(data)
                info.mode = extra.get("mode", 0o644)
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
                info.mode = extra.get("mode", 0o755)
            elif kind == "symlink":
                info.type = tarfile.SYMTYPE
                info.linkname = extra["target"]
                info.mode = 0o777
            elif kind == "hardlink":
                info.type = tarfile.LNKTYPE
                info.linkname = extra["target"]
                info.mode = extra.get("mode", 0o644)
            elif kind == "chardev":
                info.type = tarfile.CHRTYPE
                info.devmajor, info.devminor = extra["major"], extra["minor"]
                info.mode = extra.get("mode", 0o666)
            elif kind == "fifo":
                info.type = tarfile.FIFOTYPE
                info.mode = extra.get("mode", 0o644)
            if "xattrs" in extra:
                info.pax_headers = {"SCHILY.xattr." + key: value
                                    for key, value in extra["xattrs"].items()}
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    tar_bytes = raw.getvalue()
    compressed = io.BytesIO()
    with gzip.GzipFile(fileobj=compressed, mode="wb", mtime=0) as gz:
        gz.write(tar_bytes)
    return compressed.getvalue(), digest_of(tar_bytes)


def semantics_layers():
    """Layers exercising OCI changeset semantics, for comparing pullagent with umoci."""
    lower = make_tree_layer([
        ("etc", "dir", {}),
        ("etc/passwd", "file", {"content": b"root:x:0:0:root:/root:/bin/sh\nweb:x:1000:1000::/home/web:/bin/sh\n"}),
        ("etc/group", "file", {"content": b"root:x:0:\nweb:x:1000:\n"}),
        ("usr", "dir", {}), ("usr/bin", "dir", {}), ("usr/lib", "dir", {}),
        ("usr/bin/busybox", "file", {"content": b"\x7fELF busybox", "mode": 0o755}),
        ("usr/bin/sh", "hardlink", {"target": "usr/bin/busybox"}),
        ("usr/bin/su", "file", {"content": b"\x7fELF su", "mode": 0o4755}),
        ("usr/bin/wall", "file", {"content": b"\x7fELF wall", "mode": 0o2755, "gid": 5}),
        ("lib", "symlink", {"target": "usr/lib"}),
        ("tmp", "dir", {"mode": 0o1777}),
        ("home", "dir", {}), ("home/web", "dir", {"uid": 1000, "gid": 1000, "mode": 0o750}),
        ("home/web/.profile", "file", {"content": b"export A=1\n", "uid": 1000, "gid": 1000}),
        ("d", "dir", {}), ("d/old1", "file", {"content": b"old"}),
        ("d/sub", "dir", {}), ("d/sub/old2", "file", {"content": b"old"}),
        ("gone.txt", "file", {"content": b"bye"}),
        ("gonedir", "dir", {}), ("gonedir/x", "file", {"content": b"x"}),
        ("replaced", "dir", {}), ("replaced/inner", "file", {"content": b"i"}),
        ("dev", "dir", {}), ("dev/null", "chardev", {"major": 1, "minor": 3}),
        ("run", "dir", {}), ("run/initctl", "fifo", {"mode": 0o600}),
        ("etc/mime", "file", {"content": b"text\n", "xattrs": {"user.mime_type": "text/plain"}}),
    ])
    upper = make_tree_layer([
        (".wh.gone.txt", "file", {}),
        (".wh.gonedir", "file", {}),
        ("d", "dir", {}),
        ("d/new", "file", {"content": b"new"}),
        ("d/.wh..wh..opq", "file", {}),
        ("lib/libx.so", "file", {"content": b"\x7fELF libx"}),
        ("usr/bin/busybox2", "hardlink", {"target": "usr/bin/busybox"}),
        ("replaced", "file", {"content": b"now a file"}),
        ("etc/motd", "file", {"content": b"hello\n", "mode": 0o600}),
        # No entry for home/web itself: its owner and mode come from the layer below.
        ("home/web/notes", "file", {"content": b"n", "uid": 1000, "gid": 1000}),
        ("usr/bin/sh", "file", {"content": b"\x7fELF sh now its own", "mode": 0o755}),
    ])
    return [lower, upper]


def standalone_semantics_layers():
    """The lower layer of semantics_layers() under an upper one that holds every parent of its
    entries itself, as image builders write layers: it can be unpacked without the layer below
    (side by side), and must still compose to what umoci unpacks."""
    lower = semantics_layers()[0]
    upper = make_tree_layer([
        (".wh.gone.txt", "file", {}),
        (".wh.gonedir", "file", {}),
        ("d", "dir", {}),
        ("d/.wh..wh..opq", "file", {}),
        ("d/new", "file", {"content": b"new"}),
        ("replaced", "file", {"content": b"now a file"}),
        ("etc", "dir", {"mode": 0o755}),
        ("etc/motd", "file", {"content": b"hello\n", "mode": 0o600}),
        ("etc/.wh.group", "file", {}),
        ("usr", "dir", {}), ("usr/bin", "dir", {}),
        ("usr/bin/tool", "file", {"content": b"\x7fELF tool", "mode": 0o755}),
        ("usr/bin/tool2", "hardlink", {"target": "usr/bin/tool"}),
        ("usr/bin/wall", "dir", {"mode": 0o700}),
        ("usr/bin/wall/inner", "file", {"content": b"a directory where a file was"}),
        ("home", "dir", {}),
        ("home/web", "dir", {"uid": 1000, "gid": 1000, "mode": 0o750}),
        ("home/web/notes", "file", {"content": b"n", "uid": 1000, "gid": 1000}),
        ("tmp", "dir", {"mode": 0o1777}),
        ("gonedir", "dir", {"mode": 0o711}),
        ("gonedir/again", "file", {"content": b"a new directory under a removed name"}),
        ("dev", "dir", {}), ("dev/.wh.null", "file", {}),
        ("newdir", "dir", {}), ("newdir/f", "file", {"content": b"f",
                                                     "xattrs": {"user.note": "mine"}}),
    ])
    return [lower, upper]


def overlay_forging_layers(kind):
    """A base and an upper layer trying to pass overlayfs metadata off as its own content."""
    lower = make_tree_layer([
        ("d", "dir", {}), ("d/kept.txt", "file", {"content": b"lower content"}),
        ("e", "dir", {}), ("e/victim", "file", {"content": b"must stay visible"}),
    ])
    if kind == "xattr":
        upper = make_tree_layer([
            ("d", "dir", {"xattrs": {"user.overlay.opaque": "y", "trusted.overlay.opaque": "y"}}),
            ("d/new.txt", "file", {"content": b"n", "xattrs": {"user.overlay.redirect": "/e"}}),
        ])
    else:
        upper = make_tree_layer([("e/victim", "chardev", {"major": 0, "minor": 0})])
    return [lower, upper]


def make_image(layers, docker=False, arch="amd64", duplicate_first_layer=False, config_extra=None,
               diff_ids=None, layer_annotations=None):
    """layers: list of (blob, diff_id); layer_annotations: one dict per layer, or None. Returns
    (manifest_bytes, media_type, blobs dict)."""
    if duplicate_first_layer:
        layers = [layers[0]] + list(layers)
    config = {
        "architecture": arch, "os": "linux",
        "config": config_extra or {"Cmd": ["/bin/sh"], "Env": ["PATH=/usr/bin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids or [d for _, d in layers]},
        "history": [{"created_by": "pullagent test"} for _ in layers],
    }
    config_bytes = json.dumps(config, sort_keys=True).encode()
    blobs = {digest_of(config_bytes): config_bytes}
    for blob, _ in layers:
        blobs[digest_of(blob)] = blob
    manifest = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST if docker else OCI_MANIFEST,
        "config": {"mediaType": DOCKER_CONFIG if docker else OCI_CONFIG,
                   "digest": digest_of(config_bytes), "size": len(config_bytes)},
        "layers": [{"mediaType": DOCKER_LAYER if docker else OCI_LAYER_GZIP,
                    "digest": digest_of(b), "size": len(b)} for b, _ in layers],
    }
    for descriptor, annotations in zip(manifest["layers"], layer_annotations or []):
        if annotations:
            descriptor["annotations"] = annotations
    manifest_bytes = json.dumps(manifest, indent=2, sort_keys=True).encode()
    return manifest_bytes, manifest["mediaType"], blobs


def estargz_layer(built=None):
    """An eStargz layer (tests/support/estargz.py's sample unless `built` is another of its
    build()s) as an image layer: (blob, diff_id) and the annotations a converter gives it (the
    TOC's digest, what it inflates to)."""
    import estargz
    blob, toc_digest, _ = built or estargz.sample()
    uncompressed = gzip.decompress(blob)
    return (blob, digest_of(uncompressed)), {
        "containerd.io/snapshot/stargz/toc.digest": toc_digest,
        "io.containers.estargz.uncompressed-size": str(len(uncompressed))}


def make_index(entries):
    """entries: list of (manifest_bytes, media_type, platform dict or None, annotations)."""
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    for manifest_bytes, media_type, platform, annotations in entries:
        entry = {"mediaType": media_type, "digest": digest_of(manifest_bytes),
                 "size": len(manifest_bytes)}
        if platform:
            entry["platform"] = platform
        if annotations:
            entry["annotations"] = annotations
        index["manifests"].append(entry)
    return json.dumps(index, indent=2).encode(), OCI_INDEX


class Pusher:
    """Pushes blobs and manifests through the registry API (monolithic uploads), over one
    kept-alive connection: the stack pushes about a thousand requests at every start, and a TLS
    handshake each was most of that time."""

    def __init__(self, base_url, ca_file, auth_header_for):
        self.base = base_url.rstrip("/")
        self.context = ssl.create_default_context(cafile=ca_file)
        self.auth_header_for = auth_header_for  # repo -> "Bearer ..." / "Basic ..." / None
        self._parsed = urllib.parse.urlsplit(self.base)
        self._connection = None
        self._lock = threading.Lock()  # the stack's control handlers push from their threads

    def _connect(self):
        if self._connection is None:
            if self._parsed.scheme == "https":
                self._connection = http.client.HTTPSConnection(
                    self._parsed.hostname, self._parsed.port, context=self.context, timeout=60)
            else:
                self._connection = http.client.HTTPConnection(
                    self._parsed.hostname, self._parsed.port, timeout=60)
        return self._connection

    def _request(self, method, url, repo, data=None, headers=None):
        headers = dict(headers or {})
        auth = self.auth_header_for(repo)
        if auth:
            headers["Authorization"] = auth
        target = urllib.parse.urlsplit(url)
        if (target.hostname, target.port) != (self._parsed.hostname, self._parsed.port):
            raise RuntimeError(f"{url} is not on {self.base}")
        path = target.path + ("?" + target.query if target.query else "")
        with self._lock:
            # A kept connection the registry closed meanwhile fails once: then a new one.
            for attempt in (0, 1):
                connection = self._connect()
                try:
                    connection.request(method, path, body=data, headers=headers)
                    response = connection.getresponse()
                    body = response.read()
                    if response.will_close:
                        connection.close()
                        self._connection = None
                    return response.status, response.headers, body
                except (http.client.HTTPException, OSError):
                    connection.close()
                    self._connection = None
                    if attempt == 1:
                        raise

    def push_blob(self, repo, blob):
        digest = digest_of(blob)
        status, _, _ = self._request("HEAD", f"{self.base}/v2/{repo}/blobs/{digest}", repo)
        if status == 200:
            return
        status, headers, body = self._request("POST", f"{self.base}/v2/{repo}/blobs/uploads/", repo,
                                              data=b"")
        if status != 202:
            raise RuntimeError(f"start upload to {repo}: {status} {body[:200]!r}")
        location = urllib.parse.urljoin(self.base + "/", headers["Location"])
        separator = "&" if "?" in location else "?"
        status, _, body = self._request(
            "PUT", f"{location}{separator}digest={urllib.parse.quote(digest)}", repo, data=blob,
            headers={"Content-Type": "application/octet-stream"})
        if status != 201:
            raise RuntimeError(f"upload {digest} to {repo}: {status} {body[:200]!r}")

    def push_manifest(self, repo, reference, manifest_bytes, media_type):
        status, _, body = self._request("PUT", f"{self.base}/v2/{repo}/manifests/{reference}", repo,
                                        data=manifest_bytes, headers={"Content-Type": media_type})
        if status != 201:
            raise RuntimeError(f"push manifest {repo}:{reference}: {status} {body[:300]!r}")


def standard_images():
    """The images every registry of the stack serves. Returns {name: spec} where spec has the
    manifest bytes, media type, blobs and a summary for the tests."""
    base = make_layer("base", [("etc/os-release", 300, "text"), ("usr/lib/libbase.so", 200_000, "random")])
    big = make_layer("big", [("opt/app/data.bin", 4 * 1024 * 1024, "random"),
                             ("opt/app/readme.txt", 5000, "text")])
    small = make_layer("small", [("app/config.txt", 1000, "text")])
    newer = make_layer("v2", [("app/v2.bin", 300_000, "random")])

    images = {}

    def add(name, manifest_bytes, media_type, blobs, extra_manifests=()):
        images[name] = {"manifest": manifest_bytes, "media_type": media_type, "blobs": blobs,
                        "extra_manifests": list(extra_manifests)}

    add("test/multi:v1", *make_image([base, big, small]))
    add("test/multi:v2", *make_image([base, newer]))
    add("test/docker:v1", *make_image([base, small], docker=True))
    # Docker media types: what Debian's docker-registry in proxy mode (the pull-through cache
    # of the mirror tests) can fetch from its upstream; it does not ask for OCI manifests.
    add("test/cached:v1", *make_image([big, small], docker=True))
    add("test/dup:v1", *make_image([small, base], duplicate_first_layer=True))

    semantics = semantics_layers()
    add("test/semantics:v1", *make_image(semantics, config_extra={
        "Entrypoint": ["/usr/bin/busybox"], "Cmd": ["httpd", "-f"], "Env": ["A=1"],
        "WorkingDir": "/home/web", "User": "web"}))
    add("test/semantics:standalone", *make_image(standalone_semantics_layers()))
    add("test/forge:xattr", *make_image(overlay_forging_layers("xattr")))
    add("test/forge:whiteout", *make_image(overlay_forging_layers("whiteout")))
    add("test/baddiff:v1", *make_image([small], diff_ids=["sha256:" + "0" * 64]))
    add("test/diffcount:v1", *make_image([small], diff_ids=[small[1], small[1]]))
    lazy_layer, lazy_annotations = estargz_layer()
    add("test/estargz:v1", *make_image([lazy_layer], layer_annotations=[lazy_annotations]))
    # The marked layer over one it overrides, and a plain one over it, all read in place:
    # var/cache/ made opaque hides var/cache/old, usr/bin/ping is replaced, and etc/ is the top
    # layer's alone.
    import estargz
    below, below_annotations = estargz_layer(estargz.build(
        [("usr/", "dir", None), ("usr/bin/", "dir", None), ("usr/bin/ping", "reg", b"old ping\n"),
         ("var/", "dir", None), ("var/cache/", "dir", None), ("var/cache/old", "reg", b"old\n")],
        chunk_size=1000))
    marked_layer, marked_annotations = estargz_layer(estargz.marked())
    above, above_annotations = estargz_layer(estargz.build(
        [("etc/", "dir", None), ("etc/motd", "reg", b"motd\n"), ("etc/issue", "reg", b"issue\n")],
        chunk_size=1000))
    add("test/estargz:marked", *make_image(
        [below, marked_layer, above],
        layer_annotations=[below_annotations, marked_annotations, above_annotations]))

    amd64 = make_image([base, small])
    arm64 = make_image([newer], arch="arm64")
    attestation = make_image([small], arch="unknown")
    index_bytes, index_type = make_index([
        (arm64[0], arm64[1], {"os": "linux", "architecture": "arm64", "variant": "v8"}, None),
        (attestation[0], attestation[1], {"os": "unknown", "architecture": "unknown"},
         {"vnd.docker.reference.type": "attestation-manifest"}),
        (amd64[0], amd64[1], {"os": "linux", "architecture": "amd64"}, None),
    ])
    blobs = {}
    for part in (amd64, arm64, attestation):
        blobs.update(part[2])
    add("test/index:v1", index_bytes, index_type, blobs,
        extra_manifests=[(m[0], m[1]) for m in (amd64, arm64, attestation)])
    # An image built for arm64 alone: an amd64 host has nothing to run.
    arm_index, arm_index_type = make_index([
        (arm64[0], arm64[1], {"os": "linux", "architecture": "arm64", "variant": "v8"}, None)])
    add("test/armonly:v1", arm_index, arm_index_type, dict(arm64[2]),
        extra_manifests=[(arm64[0], arm64[1])])
    return images


def disk_images(versions=6, app_bytes=2 * 1024 * 1024):
    """test/disk:v1..vN: a shared base and an app layer of its own per version (incompressible,
    so that each version costs its size twice: blob and snapshot): the redeploys of the disk
    tests, more than their small filesystem holds."""
    base = make_layer("base", [("etc/os-release", 300, "text"), ("usr/lib/libbase.so", 200_000, "random")])
    images = {}
    for version in range(1, versions + 1):
        app = make_layer(f"disk-v{version}", [("app/data.bin", app_bytes, "random"),
                                              ("app/version.txt", 20, "text")])
        manifest, media_type, blobs = make_image([base, app])
        images[f"test/disk:v{version}"] = {"manifest": manifest, "media_type": media_type,
                                           "blobs": blobs, "extra_manifests": []}
    return images


def website_images():
    """The seed's `privatewebsite` image in two versions sharing their base layer."""
    base = make_layer("base", [("etc/os-release", 300, "text"), ("usr/lib/libbase.so", 200_000, "random")])
    def site(version, extra):
        html = f"<html><body><h1>Hello from privatewebsite {version}</h1></body></html>\n".encode()
        return make_tree_layer([("home", "dir", {}), ("home/site", "dir", {}),
                                ("home/site/wwwroot", "dir", {}),
                                ("home/site/wwwroot/index.html", "file", {"content": html})] + extra)
    v1 = site("lnx-v1", [])
    v2 = site("lnx-v2", [("home/site/wwwroot/v2.txt", "file", {"content": b"new in v2\n"})])
    config = {"Entrypoint": ["/bin/sh", "-c"], "Cmd": ["httpd -f -h /home/site/wwwroot"],
              "WorkingDir": "/home/site/wwwroot"}
    images = {}
    for tag, layer in (("lnx-v1", v1), ("lnx-v2", v2)):
        manifest, media_type, blobs = make_image([base, layer], config_extra=config)
        images[tag] = {"manifest": manifest, "media_type": media_type, "blobs": blobs,
                       "extra_manifests": []}
    return images


def private_images():
    """One tenant's private image: the public base layer under a layer of its own secrets."""
    base = make_layer("base", [("etc/os-release", 300, "text"), ("usr/lib/libbase.so", 200_000, "random")])
    secret = make_layer("private", [("srv/secret.txt", 2000, "text"),
                                    ("srv/key.bin", 150_000, "random")])
    manifest, media_type, blobs = make_image([base, secret])
    return {"private:v1": {"manifest": manifest, "media_type": media_type, "blobs": blobs,
                           "extra_manifests": []}}


def summary(images):
    out = {}
    for name, spec in images.items():
        manifest = json.loads(spec["manifest"])
        entry = {"digest": digest_of(spec["manifest"]), "media_type": spec["media_type"],
                 "size": len(spec["manifest"])}
        if "layers" in manifest:
            entry["layers"] = [{"digest": l["digest"], "size": l["size"]} for l in manifest["layers"]]
            entry["config"] = manifest["config"]["digest"]
        else:
            entry["manifests"] = [{"digest": m["digest"], "platform": m.get("platform")}
                                  for m in manifest["manifests"]]
            for body, _ in spec["extra_manifests"]:
                child = json.loads(body)
                if any(m["digest"] == digest_of(body) and m.get("platform", {}).get("architecture") == "amd64"
                       for m in manifest["manifests"]):
                    entry["amd64"] = {"digest": digest_of(body),
                                      "layers": [{"digest": l["digest"], "size": l["size"]}
                                                 for l in child["layers"]]}
        out[name] = entry
    return out


def push_all(pusher, images):
    for name, spec in images.items():
        repo, _, tag = name.partition(":")
        for blob in spec["blobs"].values():
            pusher.push_blob(repo, blob)
        for body, media_type in spec["extra_manifests"]:
            pusher.push_manifest(repo, digest_of(body), body, media_type)
        pusher.push_manifest(repo, tag, spec["manifest"], spec["media_type"])
