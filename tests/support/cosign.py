#!/usr/bin/env python3
"""cosign-format signatures made with python3-cryptography, never with the code under test.

What `cosign sign --key` attaches (sigstore/cosign specs/SIGNATURE_SPEC.md, protocols.md §17):
under the tag sha256-<hex of the signed manifest or index>.sig, an OCI image manifest with one
layer per signature, of media type application/vnd.dev.cosign.simplesigning.v1+json, whose bytes
are the payload

  {"critical": {"identity": {"docker-reference": "<registry>/<repository>"},
                "image": {"docker-manifest-digest": "sha256:..."},
                "type": "cosign container image signature"},
   "optional": null}

and whose annotation dev.cosignproject.cosign/signature is the base64 of the signature over
those bytes: ECDSA P-256 (ASN.1 DER) or RSA PKCS #1 v1.5 over their SHA-256, Ed25519 over the
bytes.

cosign v3 (sigstore/cosign specs/BUNDLE_SPEC.md) attaches a Sigstore bundle instead, as an OCI
1.1 referrer: a manifest of artifactType application/vnd.dev.sigstore.bundle.v0.3+json whose
subject is the signed manifest and whose one layer is the bundle, a DSSE envelope over the
in-toto statement

  {"_type": "https://in-toto.io/Statement/v1", "subject": [{"digest": {"sha256": "<hex>"}}],
   "predicateType": "https://sigstore.dev/cosign/sign/v1", "predicate": {}}

signed over DSSE's pre-authentication encoding. A registry without the referrers API lists it
in the index under the tag sha256-<hex>.

  cosign.py fixtures DIR    writes the unit tests' fixtures (public keys, payloads, signatures)
"""
import base64
import hashlib
import json
import os
import sys

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import images as image_lib  # noqa: E402

SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
BUNDLE_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
INTOTO_TYPE = "application/vnd.in-toto+json"
COSIGN_SIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1"
EMPTY_CONFIG = "application/vnd.oci.empty.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def generate(kind):
    if kind == "ecdsa":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "ecdsa-p384":
        return ec.generate_private_key(ec.SECP384R1())
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=3072)
    if kind == "rsa-1024":
        return rsa.generate_private_key(public_exponent=65537, key_size=1024)
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(kind)


def public_pem(key):
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def sign(key, data):
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(hashes.SHA256()))
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    return key.sign(data)


def payload(docker_reference, manifest_digest):
    """The payload as cosign writes it (Go's encoding/json: no spaces, keys in struct order)."""
    return json.dumps({"critical": {"identity": {"docker-reference": docker_reference},
                                    "image": {"docker-manifest-digest": manifest_digest},
                                    "type": "cosign container image signature"},
                       "optional": None}, separators=(",", ":")).encode()


def statement(manifest_digest, predicate_type=COSIGN_SIGN_PREDICATE):
    """The in-toto statement `cosign sign` signs into a bundle (protojson: no spaces)."""
    return json.dumps({"_type": "https://in-toto.io/Statement/v1",
                       "subject": [{"digest": {"sha256": manifest_digest.partition(":")[2]}}],
                       "predicateType": predicate_type, "predicate": {}},
                      separators=(",", ":")).encode()


def pae(payload_type, body):
    """DSSE's pre-authentication encoding."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(body), body)


def bundle(key, body):
    """A Sigstore bundle v0.3 (bytes) of a DSSE envelope over the statement `body`, signed by
    `key`, as cosign v3 writes one for a key (the hint is the key's SHA-256, no log entry)."""
    der = key.public_key().public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    return json.dumps({
        "mediaType": BUNDLE_TYPE,
        "verificationMaterial": {"publicKey": {"hint": base64.b64encode(
            hashlib.sha256(der).digest()).decode()}, "tlogEntries": []},
        "dsseEnvelope": {"payload": base64.b64encode(body).decode(), "payloadType": INTOTO_TYPE,
                         "signatures": [{"sig": base64.b64encode(
                             sign(key, pae(INTOTO_TYPE, body))).decode(), "keyid": ""}]},
    }, separators=(",", ":")).encode()


def bundle_referrer(subject, bundle_bytes):
    """(manifest bytes, blobs) of the referrer cosign v3 pushes for a bundle."""
    config = b"{}"
    manifest = {"schemaVersion": 2, "mediaType": image_lib.OCI_MANIFEST,
                "artifactType": BUNDLE_TYPE,
                "config": {"mediaType": EMPTY_CONFIG, "digest": image_lib.digest_of(config),
                           "size": len(config)},
                "layers": [{"mediaType": BUNDLE_TYPE, "digest": image_lib.digest_of(bundle_bytes),
                            "size": len(bundle_bytes)}],
                "subject": subject,
                "annotations": {"dev.sigstore.bundle.content": "dsse-envelope",
                                "dev.sigstore.bundle.predicateType": COSIGN_SIGN_PREDICATE}}
    blobs = {image_lib.digest_of(config): config,
             image_lib.digest_of(bundle_bytes): bundle_bytes}
    return json.dumps(manifest, separators=(",", ":")).encode(), blobs


def signature_manifest(signatures):
    """signatures: list of (payload bytes, signature bytes). Returns (manifest bytes, blobs)."""
    config = json.dumps({"architecture": "", "os": "", "config": {},
                         "rootfs": {"type": "layers",
                                    "diff_ids": [image_lib.digest_of(p) for p, _ in signatures]}},
                        separators=(",", ":")).encode()
    blobs = {image_lib.digest_of(config): config}
    layers = []
    for body, signature in signatures:
        blobs[image_lib.digest_of(body)] = body
        layers.append({"mediaType": SIMPLE_SIGNING, "digest": image_lib.digest_of(body),
                       "size": len(body),
                       "annotations": {SIGNATURE_ANNOTATION: base64.b64encode(signature).decode()}})
    manifest = {"schemaVersion": 2, "mediaType": image_lib.OCI_MANIFEST,
                "config": {"mediaType": image_lib.OCI_CONFIG, "digest": image_lib.digest_of(config),
                           "size": len(config)},
                "layers": layers}
    return json.dumps(manifest, separators=(",", ":")).encode(), blobs


def signature_tag(digest):
    return digest.replace(":", "-") + ".sig"


def signed_images(registry, keys):
    """The images of the signature tests, for the registry `registry` (host:port) that serves
    them: {name: spec} as images.py makes them, with the signature manifests to push beside.

    keys: {"trusted": ecdsa key, "other": ecdsa key, "rsa": ..., "ed25519": ...}."""
    name = f"{registry}/test/signed"
    images = {}

    def image(tag, seed):
        layer = image_lib.make_layer(f"signed-{seed}", [("app/signed.txt", 500, "text")])
        manifest, media_type, blobs = image_lib.make_image([layer])
        spec = {"manifest": manifest, "media_type": media_type, "blobs": blobs,
                "extra_manifests": [], "signatures": {}}
        images[f"test/signed:{tag}"] = spec
        return spec

    def attach(spec, subject_digest, signatures):
        manifest, blobs = signature_manifest(signatures)
        spec["signatures"][signature_tag(subject_digest)] = (manifest, blobs)

    def signed(key, reference, digest, body=None):
        body = body or payload(reference, digest)
        return body, sign(key, body)

    for tag, key in (("ecdsa", "trusted"), ("rsa", "rsa"), ("ed25519", "ed25519")):
        spec = image(tag, tag)
        digest = image_lib.digest_of(spec["manifest"])
        attach(spec, digest, [signed(keys[key], f"{name}:{tag}", digest)])
    image("unsigned", "unsigned")
    spec = image("untrusted", "untrusted")
    digest = image_lib.digest_of(spec["manifest"])
    attach(spec, digest, [signed(keys["other"], f"{name}:untrusted", digest)])
    spec = image("twosigs", "twosigs")
    digest = image_lib.digest_of(spec["manifest"])
    attach(spec, digest, [signed(keys["other"], f"{name}:twosigs", digest),
                          signed(keys["trusted"], f"{name}:twosigs", digest)])
    # Signed by the trusted key, but the payload names another image's digest.
    spec = image("wrongdigest", "wrongdigest")
    digest = image_lib.digest_of(spec["manifest"])
    other = image_lib.digest_of(images["test/signed:ecdsa"]["manifest"])
    attach(spec, digest, [signed(keys["trusted"], f"{name}:wrongdigest", other)])
    # A signature made over other bytes than the payload it is attached to.
    spec = image("tampered", "tampered")
    digest = image_lib.digest_of(spec["manifest"])
    body = payload(f"{name}:tampered", digest)
    attach(spec, digest, [(body, sign(keys["trusted"], body.replace(b"tampered", b"tamperex")))])
    # Signed for another repository of the same registry.
    spec = image("elsewhere", "elsewhere")
    digest = image_lib.digest_of(spec["manifest"])
    attach(spec, digest, [signed(keys["trusted"], f"{registry}/test/other:elsewhere", digest)])
    # The bare repository, as `cosign sign` writes it: matchRepository admits it, the default
    # matchRepoDigestOrExact does not (as containers/image decides).
    spec = image("bare", "bare")
    digest = image_lib.digest_of(spec["manifest"])
    attach(spec, digest, [signed(keys["trusted"], name, digest)])

    # cosign v3's bundles, as referrers: by the trusted key, by another key, naming another
    # digest, and an attestation (another predicate) by the trusted key.
    other = image_lib.digest_of(images["test/signed:ecdsa"]["manifest"])
    for tag, key, names, predicate in (
            ("bundle-ecdsa", "trusted", None, COSIGN_SIGN_PREDICATE),
            ("bundle-untrusted", "other", None, COSIGN_SIGN_PREDICATE),
            ("bundle-wrongdigest", "trusted", other, COSIGN_SIGN_PREDICATE),
            ("bundle-attestation", "trusted", None, "https://slsa.dev/provenance/v1")):
        spec = image(tag, tag)
        digest = image_lib.digest_of(spec["manifest"])
        subject = {"mediaType": spec["media_type"], "digest": digest,
                   "size": len(spec["manifest"])}
        spec["referrers"] = {digest: [bundle_referrer(
            subject, bundle(keys[key], statement(names or digest, predicate)))]}

    # Multi-platform: one index signed on the index, one signed on its amd64 manifest only.
    for tag, on_index in (("index-signed", True), ("platform-signed", False)):
        layer = image_lib.make_layer(f"signed-{tag}", [("app/signed.txt", 500, "text")])
        amd64 = image_lib.make_image([layer])
        arm64 = image_lib.make_image([layer], arch="arm64")
        index_bytes, index_type = image_lib.make_index([
            (amd64[0], amd64[1], {"os": "linux", "architecture": "amd64"}, None),
            (arm64[0], arm64[1], {"os": "linux", "architecture": "arm64"}, None)])
        blobs = dict(amd64[2])
        blobs.update(arm64[2])
        spec = {"manifest": index_bytes, "media_type": index_type, "blobs": blobs,
                "extra_manifests": [(amd64[0], amd64[1]), (arm64[0], arm64[1])],
                "signatures": {}}
        images[f"test/signed:{tag}"] = spec
        subject = image_lib.digest_of(index_bytes if on_index else amd64[0])
        attach(spec, subject, [signed(keys["trusted"], f"{name}:{tag}", subject)])
    return images


def push_signed(pusher, images):
    """The images, their .sig manifests, and their bundles' referrers with the tag schema's
    index per subject (the registry has no referrers API)."""
    image_lib.push_all(pusher, images)
    for name, spec in images.items():
        repo = name.partition(":")[0]
        for tag, (manifest, blobs) in spec["signatures"].items():
            for blob in blobs.values():
                pusher.push_blob(repo, blob)
            pusher.push_manifest(repo, tag, manifest, image_lib.OCI_MANIFEST)
        for subject, referrers in spec.get("referrers", {}).items():
            listed = []
            for manifest, blobs in referrers:
                for blob in blobs.values():
                    pusher.push_blob(repo, blob)
                digest = image_lib.digest_of(manifest)
                pusher.push_manifest(repo, digest, manifest, image_lib.OCI_MANIFEST)
                listed.append({"mediaType": image_lib.OCI_MANIFEST, "digest": digest,
                               "size": len(manifest), "artifactType": BUNDLE_TYPE})
            index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": listed},
                               separators=(",", ":")).encode()
            pusher.push_manifest(repo, subject.replace(":", "-"), index, OCI_INDEX)


def write_keys(directory):
    """Fresh keys, their public halves written as <name>.pub; returns the private keys."""
    os.makedirs(directory, exist_ok=True)
    keys = {"trusted": generate("ecdsa"), "other": generate("ecdsa"), "rsa": generate("rsa"),
            "ed25519": generate("ed25519")}
    for key_name, key in keys.items():
        with open(os.path.join(directory, f"{key_name}.pub"), "wb") as f:
            f.write(public_pem(key))
    return keys


def write_fixtures(directory):
    """For the unit tests: a key of each kind (and a weak RSA one), a payload and each key's
    signature over it, raw."""
    os.makedirs(directory, exist_ok=True)
    body = payload("myreg.azurecr.io/app", "sha256:" + "ab" * 32)
    with open(os.path.join(directory, "payload.json"), "wb") as f:
        f.write(body)
    for kind in ("ecdsa", "ecdsa-p384", "rsa", "rsa-1024", "ed25519"):
        key = generate(kind)
        with open(os.path.join(directory, f"{kind}.pub"), "wb") as f:
            f.write(public_pem(key))
        with open(os.path.join(directory, f"{kind}.sig"), "wb") as f:
            f.write(sign(key, body))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "fixtures":
        write_fixtures(sys.argv[2])
    else:
        sys.exit(__doc__)
