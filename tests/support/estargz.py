#!/usr/bin/env python3
"""eStargz layers written as containerd/stargz-snapshotter's estargz package writes them
(protocols.md §18), with Python's gzip, zlib and tarfile, never with the code under test.

The layer is one tar stream cut into gzip members: every chunk of a regular file's content starts
a member of its own (so that it can be fetched with a Range request and inflated alone; the tar
padding and the next headers follow it in the same member), then the TOC entry
`stargz.index.json` (with the end of the archive) in a member, then the 51-byte footer, an empty
gzip member whose extra field "SG" holds the TOC's offset as 16 hex digits and "STARGZ". The
whole blob still inflates to a valid tar.

  estargz.py fixtures DIR    writes the unit tests' layers: sample.estargz and sample.json,
                             marked.estargz and marked.json
"""
import base64
import gzip
import hashlib
import io
import json
import os
import struct
import sys
import tarfile
import zlib

LANDMARK = ".prefetch.landmark"
MODTIME = 1700000000  # 2023-11-14T22:13:20Z


def _sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _member(data):
    return gzip.compress(data, mtime=0)


def footer(toc_offset):
    """The footer (estargz.go footerBytes): 51 bytes."""
    subfield = b"%016xSTARGZ" % toc_offset
    extra = b"SG" + struct.pack("<H", len(subfield)) + subfield
    header = b"\x1f\x8b\x08\x04" + b"\x00\x00\x00\x00" + b"\x00\xff" + struct.pack("<H", len(extra))
    deflater = zlib.compressobj(0, zlib.DEFLATED, -15)
    empty = deflater.compress(b"") + deflater.flush()
    out = header + extra + empty + struct.pack("<II", 0, 0)
    assert len(out) == 51, len(out)
    return out


def _info(name, kind, size=0, link=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = size
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    info.mtime = MODTIME
    info.linkname = link
    info.uid = info.gid = 0
    return info


def build(entries, chunk_size):
    """entries: [(name, kind, data_or_link)] with kind "dir", "reg", "symlink" or "hardlink" (a
    landmark is a "reg" named LANDMARK), or [(name, "reg", data, xattrs)] for a file with
    extended attributes ({name: bytes}, in a PAX header and the TOC's "xattrs").
    Returns (blob, toc_digest, toc_offset)."""
    stream = bytearray()  # the uncompressed tar
    cuts = []  # where a member starts in `stream`, and the TOC entry it opens (if any)
    toc = []
    for name, kind, payload, *rest in entries:
        xattrs = rest[0] if rest else {}
        if xattrs:
            info = _info(name, tarfile.REGTYPE, size=len(payload))
            info.pax_headers = {"SCHILY.xattr." + key: value.decode("latin-1")
                                for key, value in xattrs.items()}
            stream += info.tobuf(tarfile.PAX_FORMAT)
            entry = {"name": name, "type": "reg", "size": len(payload), "mode": 0o644,
                     "modtime": "2023-11-14T22:13:20Z", "digest": _sha256(payload),
                     "xattrs": {key: base64.b64encode(value).decode()
                                for key, value in xattrs.items()}}
            toc.append(entry)
            cuts.append((len(stream), entry))
            entry.update({"chunkOffset": 0, "chunkDigest": _sha256(payload)})
            stream += payload + b"\0" * (-len(payload) % 512)
        elif kind == "dir":
            stream += _info(name, tarfile.DIRTYPE).tobuf(tarfile.USTAR_FORMAT)
            toc.append({"name": name, "type": "dir", "mode": 0o755, "modtime":
                        "2023-11-14T22:13:20Z"})
        elif kind == "symlink":
            stream += _info(name, tarfile.SYMTYPE, link=payload).tobuf(tarfile.USTAR_FORMAT)
            toc.append({"name": name, "type": "symlink", "linkName": payload, "mode": 0o777})
        elif kind == "hardlink":
            stream += _info(name, tarfile.LNKTYPE, link=payload).tobuf(tarfile.USTAR_FORMAT)
            toc.append({"name": name, "type": "hardlink", "linkName": payload, "mode": 0o644})
        else:
            stream += _info(name, tarfile.REGTYPE, size=len(payload)).tobuf(tarfile.USTAR_FORMAT)
            entry = {"name": name, "type": "reg", "size": len(payload), "mode": 0o644,
                     "modtime": "2023-11-14T22:13:20Z", "digest": _sha256(payload)}
            toc.append(entry)
            for start in range(0, len(payload), chunk_size):
                chunk = payload[start:start + chunk_size]
                record = entry if start == 0 else {"name": name, "type": "chunk"}
                record.update({"chunkOffset": start, "chunkDigest": _sha256(chunk)})
                if len(payload) > chunk_size:
                    record["chunkSize"] = len(chunk)
                if start > 0:
                    toc.append(record)
                cuts.append((len(stream), record))
                stream += chunk
            stream += b"\0" * (-len(payload) % 512)
    blob = bytearray()
    starts = [0] + [at for at, _ in cuts] + [len(stream)]
    records = [None] + [record for _, record in cuts]
    for (begin, end), record in zip(zip(starts, starts[1:]), records):
        if record is not None:
            record["offset"] = len(blob)
        if end > begin or record is not None:
            blob += _member(bytes(stream[begin:end]))
    toc_json = json.dumps({"version": 1, "entries": toc}, separators=(",", ":")).encode()
    toc_offset = len(blob)
    tar = _info("stargz.index.json", tarfile.REGTYPE, size=len(toc_json)).tobuf(
        tarfile.USTAR_FORMAT) + toc_json + b"\0" * (-len(toc_json) % 512) + b"\0" * 1024
    blob += _member(tar)
    blob += footer(toc_offset)
    return bytes(blob), _sha256(toc_json), toc_offset


def sample():
    """A small layer: directories, a small file before the prefetch landmark, a file of three
    chunks after it, a symlink and a hardlink."""
    big = bytes((i * 7 + 3) % 251 for i in range(2500))
    return build([("etc/", "dir", None),
                  ("etc/hosts", "reg", b"127.0.0.1 localhost\n"),
                  (LANDMARK, "reg", b"\x0f"),
                  ("bin/", "dir", None),
                  ("bin/big", "reg", big),
                  ("bin/sh", "symlink", "big"),
                  ("bin/big2", "hardlink", "bin/big")], chunk_size=1000)


def marked():
    """A layer with marks for overlayfs: a file with extended attributes and a directory made
    opaque by its whiteout."""
    return build([("usr/", "dir", None),
                  ("usr/bin/", "dir", None),
                  ("usr/bin/ping", "reg", b"#!/bin/true\n",
                   # cap_net_raw+ep (vfs_cap_data revision 2)
                   {"security.capability": bytes.fromhex("01000002" "00200000" + "00" * 12),
                    "user.note": b"kept"}),
                  ("var/", "dir", None),
                  ("var/cache/", "dir", None),
                  ("var/cache/.wh..wh..opq", "reg", b"")], chunk_size=1000)


def write_fixtures(directory):
    os.makedirs(directory, exist_ok=True)
    for name, (blob, toc_digest, toc_offset) in (("sample", sample()), ("marked", marked())):
        # The whole blob is an ordinary tar.gz too.
        with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as archive:
            names = archive.getnames()
        assert "stargz.index.json" in names, names
        assert name != "sample" or names[:2] == ["etc", "etc/hosts"], names
        with open(os.path.join(directory, name + ".estargz"), "wb") as f:
            f.write(blob)
        with open(os.path.join(directory, name + ".json"), "w") as f:
            json.dump({"toc_digest": toc_digest, "toc_offset": toc_offset, "size": len(blob),
                       "digest": _sha256(blob)}, f, indent=2)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "fixtures":
        write_fixtures(sys.argv[2])
    else:
        sys.exit(__doc__)
