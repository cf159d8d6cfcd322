#!/usr/bin/env python3
"""Notary Project signatures made with python3-cryptography (certificates and COSE signatures),
python3-jwcrypto (JWS envelopes) and python3-cbor2 (COSE envelopes), never with the code under
test.

What `notation sign` attaches (notaryproject/specifications, protocols.md §17): an OCI image
manifest of artifactType application/vnd.cncf.notary.signature whose one layer is the envelope
(application/jose+json) and whose subject is the signed manifest; the envelope's payload is
{"targetArtifact": <descriptor of the signed manifest>}, its protected header carries alg, cty,
crit and the io.cncf.notary.* attributes, its unprotected header the certificate chain (x5c,
leaf first). The COSE form (application/cose) carries the same in a COSE_Sign1_Tagged message
(signature-envelope-cose.md). A registry without the referrers API (Debian's docker-registry 2.8) lists the
signatures in the index under the tag sha256-<hex of the subject digest>.

  notation.py fixtures DIR    writes the unit tests' fixtures (a trust store, envelopes)
  notation.py revocation-fixtures DIR    writes checkRevocation's (a CA, its CRL, certificates)
"""
import base64
import datetime
import json
import os
import subprocess
import sys
import tempfile

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID
import cbor2
from jwcrypto import jwk, jws
from jwcrypto.common import JWSEHeaderParameter, json_encode

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import images as image_lib  # noqa: E402

SIGNATURE_TYPE = "application/vnd.cncf.notary.signature"
JWS_TYPE = "application/jose+json"
COSE_TYPE = "application/cose"
PAYLOAD_TYPE = "application/vnd.cncf.notary.payload.v1+json"
EMPTY_CONFIG = "application/vnd.oci.empty.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"

# The attributes a Notary signer puts in the protected header; jwcrypto signs only headers it
# is told about.
NOTARY_HEADERS = ["io.cncf.notary.signingScheme", "io.cncf.notary.signingTime",
                  "io.cncf.notary.expiry", "io.cncf.notary.authenticSigningTime",
                  "io.example.unknownCritical"]

NOW = datetime.datetime.utcnow().replace(microsecond=0)
EXPIRING_SECONDS = 5
# `openssl ts -reply`'s settings for the test authority.
TSA_CONFIG = """
[ tsa ]
default_tsa = tsa_config
[ tsa_config ]
serial = {serial}
crypto_device = builtin
signer_digest = sha256
default_policy = 1.3.6.1.4.1.4146.2.3
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = no
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""
LONG_AGO = datetime.datetime(2020, 1, 1)
FAR_AHEAD = datetime.datetime(2120, 1, 1)


def name(cn, org="Acme", country="US", state="WA"):
    return x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, country),
                      x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, state),
                      x509.NameAttribute(NameOID.LOCALITY_NAME, "Seattle"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def key_usage(sign_certs):
    return x509.KeyUsage(digital_signature=not sign_certs, content_commitment=False,
                         key_encipherment=False, data_encipherment=False, key_agreement=False,
                         key_cert_sign=sign_certs, crl_sign=sign_certs, encipher_only=False,
                         decipher_only=False)


def certificate(subject, key, issuer=None, ca=False, not_before=LONG_AGO, not_after=FAR_AHEAD,
                digest=hashes.SHA256(), usages=(ExtendedKeyUsageOID.CODE_SIGNING,), ocsp=None,
                crl=None):
    """issuer: (name, key) or None for self-signed."""
    issuer_name, issuer_key = issuer or (subject, key)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer_name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(not_before).not_valid_after(not_after)
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
               .add_extension(key_usage(ca), critical=True))
    if usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
    if ocsp:
        builder = builder.add_extension(x509.AuthorityInformationAccess([
            x509.AccessDescription(AuthorityInformationAccessOID.OCSP,
                                   x509.UniformResourceIdentifier(ocsp))]), critical=False)
    if crl:
        builder = builder.add_extension(x509.CRLDistributionPoints([
            x509.DistributionPoint(full_name=[x509.UniformResourceIdentifier(crl)],
                                   relative_name=None, reasons=None, crl_issuer=None)]),
            critical=False)
    return builder.sign(issuer_key, digest)


def pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def der_b64(cert):
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


class Pki:
    """A root and an intermediate CA (the trust store holds the root), a second root nobody
    trusts, and signing certificates, each named for what it tests."""

    def __init__(self, revocation_base=None):
        """revocation_base: the URL of the revocation server (make_revocation_handler) the
        signers "ocsp-good", "ocsp-revoked", "crl-good" and "crl-revoked" name."""
        self.root_key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
        self.root = certificate(name("Acme Root CA"), self.root_key, ca=True,
                                usages=())
        self.ca_key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
        self.ca = certificate(name("Acme Signing CA"), self.ca_key,
                              issuer=(self.root.subject, self.root_key), ca=True, usages=())
        self.other_root_key = ec.generate_private_key(ec.SECP384R1())
        self.other_root = certificate(name("Mallory Root CA", org="Mallory"), self.other_root_key,
                                      ca=True, usages=())
        issued = (self.ca.subject, self.ca_key)
        self.signers = {}

        def signer(label, key, cert_name=None, chain_top=None, **options):
            cert = certificate(cert_name or name(f"acme-{label}"), key,
                               issuer=options.pop("issuer", issued), **options)
            self.signers[label] = (key, [cert] + (chain_top or [self.ca, self.root]))

        signer("ecdsa", ec.generate_private_key(ec.SECP256R1()))
        signer("rsa", rsa.generate_private_key(public_exponent=65537, key_size=2048))
        signer("rsa3072", rsa.generate_private_key(public_exponent=65537, key_size=3072))
        signer("expired", ec.generate_private_key(ec.SECP256R1()),
               not_before=LONG_AGO, not_after=datetime.datetime(2021, 1, 1))
        signer("serverauth", ec.generate_private_key(ec.SECP256R1()),
               usages=(ExtendedKeyUsageOID.SERVER_AUTH,))
        signer("sha1", ec.generate_private_key(ec.SECP256R1()), digest=hashes.SHA1())
        signer("revocable", ec.generate_private_key(ec.SECP256R1()),
               ocsp="http://127.0.0.1:9/ocsp")
        signer("mallory-org", ec.generate_private_key(ec.SECP256R1()),
               cert_name=name("acme-ecdsa", org="Mallory"))
        signer("untrusted", ec.generate_private_key(ec.SECP256R1()),
               issuer=(self.other_root.subject, self.other_root_key),
               chain_top=[self.other_root])
        self._signer = signer
        self.expiring_not_after = None
        # What the revocation server answers, by serial number: (certificate, revoked, issuer,
        # issuer's key).
        self.revocation = {}
        if revocation_base:
            for label, revoked, where in (("ocsp-good", False, "ocsp"),
                                          ("ocsp-revoked", True, "ocsp"),
                                          ("crl-good", False, "crl"),
                                          ("crl-revoked", True, "crl")):
                signer(label, ec.generate_private_key(ec.SECP256R1()),
                       **{where: f"{revocation_base}/{where}"})
                cert = self.signers[label][1][0]
                self.revocation[cert.serial_number] = (cert, revoked, self.ca, self.ca_key)
        # An RFC 3161 authority: its root (the tsa trust store) and its timeStamping certificate.
        self.tsa_root_key = ec.generate_private_key(ec.SECP384R1())
        self.tsa_root = certificate(name("Acme TSA Root"), self.tsa_root_key, ca=True, usages=())
        self.tsa_key = ec.generate_private_key(ec.SECP256R1())
        self.tsa = (x509.CertificateBuilder().subject_name(name("Acme TSA"))
                    .issuer_name(self.tsa_root.subject).public_key(self.tsa_key.public_key())
                    .serial_number(x509.random_serial_number())
                    .not_valid_before(LONG_AGO).not_valid_after(FAR_AHEAD)
                    .add_extension(key_usage(False), critical=True)
                    .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]),
                                   critical=True)
                    .sign(self.tsa_root_key, hashes.SHA256()))
        # Timestamping authorities by name: the one above, and (with a revocation server) one
        # under the same root whose certificate names its OCSP responder, which says revoked.
        self.authorities = {"tsa": (self.tsa, self.tsa_key)}
        if revocation_base:
            key = ec.generate_private_key(ec.SECP256R1())
            revoked_tsa = (x509.CertificateBuilder().subject_name(name("Acme TSA (revoked)"))
                           .issuer_name(self.tsa_root.subject).public_key(key.public_key())
                           .serial_number(x509.random_serial_number())
                           .not_valid_before(LONG_AGO).not_valid_after(FAR_AHEAD)
                           .add_extension(key_usage(False), critical=True)
                           .add_extension(x509.ExtendedKeyUsage(
                               [ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
                           .add_extension(x509.AuthorityInformationAccess([
                               x509.AccessDescription(
                                   AuthorityInformationAccessOID.OCSP,
                                   x509.UniformResourceIdentifier(
                                       f"{revocation_base}/ocsp"))]), critical=False)
                           .sign(self.tsa_root_key, hashes.SHA256()))
            self.authorities["tsa-revoked"] = (revoked_tsa, key)
            self.revocation[revoked_tsa.serial_number] = (revoked_tsa, True, self.tsa_root,
                                                          self.tsa_root_key)

    def expiring_signer(self):
        """A signer whose certificate is valid for a few seconds from now (made when asked, so
        that its signatures and their timestamps fall inside): the tests wait until it has
        expired, so that only a timestamp taken while it was valid keeps its signatures good."""
        if "expiring" not in self.signers:
            self.expiring_not_after = (datetime.datetime.utcnow().replace(microsecond=0)
                                       + datetime.timedelta(seconds=EXPIRING_SECONDS))
            self._signer("expiring", ec.generate_private_key(ec.SECP256R1()),
                         not_before=LONG_AGO, not_after=self.expiring_not_after)
        return self.signers["expiring"]

    def timestamp(self, message, authority="tsa"):
        """An RFC 3161 token over `message` by one of this PKI's authorities, made by
        `openssl ts` (base64 of its DER, as the envelope carries it)."""
        tsa, tsa_key = self.authorities[authority]
        with tempfile.TemporaryDirectory() as work:
            def path(name):
                return os.path.join(work, name)
            with open(path("message"), "wb") as f:
                f.write(message)
            with open(path("tsa.pem"), "wb") as f:
                f.write(pem(tsa))
            with open(path("tsa.key"), "wb") as f:
                f.write(tsa_key.private_bytes(serialization.Encoding.PEM,
                                                   serialization.PrivateFormat.PKCS8,
                                                   serialization.NoEncryption()))
            with open(path("serial"), "w") as f:
                f.write("01\n")
            with open(path("ts.cnf"), "w") as f:
                f.write(TSA_CONFIG.format(serial=path("serial")))
            subprocess.run(["openssl", "ts", "-query", "-data", path("message"), "-sha256",
                            "-cert", "-out", path("query.tsq")], check=True,
                           capture_output=True)
            subprocess.run(["openssl", "ts", "-reply", "-config", path("ts.cnf"),
                            "-queryfile", path("query.tsq"), "-signer", path("tsa.pem"),
                            "-inkey", path("tsa.key"), "-token_out", "-out", path("token.der")],
                           check=True, capture_output=True)
            with open(path("token.der"), "rb") as f:
                return base64.b64encode(f.read()).decode()

    def write_trust_store(self, root):
        """root/x509/ca/acme/root.pem, root/x509/ca/mallory/root.pem, root/x509/tsa/acme/…"""
        for kind, store, cert in (("ca", "acme", self.root), ("ca", "mallory", self.other_root),
                                  ("tsa", "acme", self.tsa_root)):
            directory = os.path.join(root, "x509", kind, store)
            os.makedirs(directory, exist_ok=True)
            with open(os.path.join(directory, "root.pem"), "wb") as f:
                f.write(pem(cert))


def make_revocation_handler(pki, recorder):
    """POST /ocsp (RFC 6960) and GET /crl (RFC 5280) for the certificates the signing CA issued
    with a revocation service, signed by that CA with python3-cryptography."""
    import servers
    settings = servers.Settings()

    class Handler(servers.BaseHandler):
        def answer(self, body, content_type):
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            if self.path.startswith("/__control/"):
                return self.handle_control(recorder, settings)
            body = self.read_body()
            recorder.add({"method": "POST", "path": self.path})
            now = datetime.datetime.utcnow()
            try:
                request = ocsp.load_der_ocsp_request(body)
                cert, revoked, issuer, issuer_key = pki.revocation[request.serial_number]
            except (ValueError, KeyError):
                response = ocsp.OCSPResponseBuilder.build_unsuccessful(
                    ocsp.OCSPResponseStatus.UNAUTHORIZED)
            else:
                response = (ocsp.OCSPResponseBuilder()
                            .add_response(cert=cert, issuer=issuer, algorithm=hashes.SHA1(),
                                          cert_status=(ocsp.OCSPCertStatus.REVOKED if revoked
                                                       else ocsp.OCSPCertStatus.GOOD),
                                          this_update=now - datetime.timedelta(minutes=1),
                                          next_update=now + datetime.timedelta(hours=1),
                                          revocation_time=(now - datetime.timedelta(hours=1)
                                                           if revoked else None),
                                          revocation_reason=None)
                            .responder_id(ocsp.OCSPResponderEncoding.HASH, issuer)
                            .sign(issuer_key, hashes.SHA256()))
            self.answer(response.public_bytes(serialization.Encoding.DER),
                        "application/ocsp-response")

        def do_GET(self):
            if self.path.startswith("/__control/"):
                return self.handle_control(recorder, settings)
            recorder.add({"method": "GET", "path": self.path})
            now = datetime.datetime.utcnow()
            builder = (x509.CertificateRevocationListBuilder().issuer_name(pki.ca.subject)
                       .last_update(now - datetime.timedelta(minutes=1))
                       .next_update(now + datetime.timedelta(hours=1)))
            for serial, (_, revoked, issuer, _) in pki.revocation.items():
                if revoked and issuer is pki.ca:
                    builder = builder.add_revoked_certificate(
                        x509.RevokedCertificateBuilder().serial_number(serial)
                        .revocation_date(now - datetime.timedelta(hours=1)).build())
            crl = builder.sign(pki.ca_key, hashes.SHA256())
            self.answer(crl.public_bytes(serialization.Encoding.DER), "application/pkix-crl")

    return Handler


def default_alg(key):
    """The algorithm Notation signs with for the key's type and size (JWS names)."""
    if isinstance(key, rsa.RSAPrivateKey):
        return {2048: "PS256", 3072: "PS384", 4096: "PS512"}[key.key_size]
    return {256: "ES256", 384: "ES384", 521: "ES512"}[key.curve.key_size]


def envelope(signer, target, expiry=None, critical_extra=False, signing_time=None,
             alg=None, timestamp=None, timestamp_authority="tsa", signing_authority=False):
    """A JWS envelope (bytes) by signer=(key, chain) over a payload naming `target`; with
    `timestamp` (a Pki), countersigned by its RFC 3161 authority `timestamp_authority`; with
    `signing_authority`, of the notary.x509.signingAuthority scheme (signing_time is then the
    authentic signing time, a critical attribute)."""
    key, chain = signer
    alg = alg or default_alg(key)
    when = (signing_time or NOW).strftime("%Y-%m-%dT%H:%M:%SZ")
    header = {"alg": alg, "cty": PAYLOAD_TYPE, "crit": ["io.cncf.notary.signingScheme"],
              "io.cncf.notary.signingScheme": "notary.x509",
              "io.cncf.notary.signingTime": when}
    if signing_authority:
        del header["io.cncf.notary.signingTime"]
        header["io.cncf.notary.signingScheme"] = "notary.x509.signingAuthority"
        header["io.cncf.notary.authenticSigningTime"] = when
        header["crit"].append("io.cncf.notary.authenticSigningTime")
    if expiry is not None:
        header["io.cncf.notary.expiry"] = expiry.strftime("%Y-%m-%dT%H:%M:%SZ")
        header["crit"].append("io.cncf.notary.expiry")
    if critical_extra:
        header["io.example.unknownCritical"] = "must be understood"
        header["crit"].append("io.example.unknownCritical")
    payload = json.dumps({"targetArtifact": target}, separators=(",", ":")).encode()
    registry = {h: JWSEHeaderParameter("Notary attribute", False, True, None)
                for h in NOTARY_HEADERS}
    token = jws.JWS(payload, header_registry=registry)
    unprotected = {"x5c": [der_b64(c) for c in chain],
                   "io.cncf.notary.signingAgent": "pullagent-tests/notation.py"}
    token.add_signature(jwk.JWK.from_pyca(key), None, json_encode(header),
                        json_encode(unprotected))
    serialized = json.loads(token.serialize(compact=False))
    if timestamp is not None:
        # Over the signature's bytes, as the Notary Project countersigns (the header is not
        # signed, so it is added after).
        signature = base64.urlsafe_b64decode(serialized["signature"] + "==")
        serialized["header"]["io.cncf.notary.timestampSignature"] = timestamp.timestamp(
            signature, timestamp_authority)
    return json.dumps(serialized).encode()


COSE_ALGORITHMS = {"PS256": -37, "PS384": -38, "PS512": -39, "ES256": -7, "ES384": -35,
                   "ES512": -36}


def cose_sign(key, alg, message):
    """A COSE signature (RFC 9053, RFC 8230): RSASSA-PSS with a salt as long as the hash, or
    ECDSA as the raw r||s, each half as long as the curve's order."""
    digest = {"256": hashes.SHA256(), "384": hashes.SHA384(), "512": hashes.SHA512()}[alg[2:]]
    if alg.startswith("PS"):
        return key.sign(message, padding.PSS(mgf=padding.MGF1(digest),
                                             salt_length=digest.digest_size), digest)
    r, s = decode_dss_signature(key.sign(message, ec.ECDSA(digest)))
    half = (key.curve.key_size + 7) // 8
    return r.to_bytes(half, "big") + s.to_bytes(half, "big")


def cose_envelope(signer, target, expiry=None, critical_extra=False, signing_time=None,
                  alg=None, timestamp=None):
    """The COSE_Sign1_Tagged form of `envelope`, as notation-core-go writes it: tag 1 epoch
    times, the chain under label 33 (x5chain), the timestamp over the signature's bytes."""
    key, chain = signer
    alg = alg or default_alg(key)
    protected = {1: COSE_ALGORITHMS[alg], 2: ["io.cncf.notary.signingScheme"], 3: PAYLOAD_TYPE,
                 "io.cncf.notary.signingScheme": "notary.x509",
                 "io.cncf.notary.signingTime": cbor2.CBORTag(1, int(
                     (signing_time or NOW).replace(tzinfo=datetime.timezone.utc).timestamp()))}
    if expiry is not None:
        protected["io.cncf.notary.expiry"] = cbor2.CBORTag(1, int(
            expiry.replace(tzinfo=datetime.timezone.utc).timestamp()))
        protected[2].append("io.cncf.notary.expiry")
    if critical_extra:
        protected["io.example.unknownCritical"] = "must be understood"
        protected[2].append("io.example.unknownCritical")
    protected_bytes = cbor2.dumps(protected)
    payload = json.dumps({"targetArtifact": target}, separators=(",", ":")).encode()
    to_sign = cbor2.dumps(["Signature1", protected_bytes, b"", payload])
    signature = cose_sign(key, alg, to_sign)
    unprotected = {33: [c.public_bytes(serialization.Encoding.DER) for c in chain],
                   "io.cncf.notary.signingAgent": "pullagent-tests/notation.py"}
    if timestamp is not None:
        unprotected["io.cncf.notary.timestampSignature"] = base64.b64decode(
            timestamp.timestamp(signature))
    return cbor2.dumps(cbor2.CBORTag(18, [protected_bytes, unprotected, payload, signature]))


def rewrite_cose(message, change):
    """The COSE_Sign1_Tagged `message` with change(parts) applied to its
    [protected, unprotected, payload, signature], encoded again."""
    parts = cbor2.loads(message).value
    change(parts)
    return cbor2.dumps(cbor2.CBORTag(18, parts))


def _flip_last_byte(parts):
    parts[3] = parts[3][:-1] + bytes([parts[3][-1] ^ 1])


def _respell_protected(parts):
    """The same protected map in other bytes (alg -7 in two bytes, 38 06, not one, 26): the
    signature covers the bytes as sent, so a verifier that signs what it re-encoded, or that
    compares meanings, would accept what was not signed."""
    header = parts[0]
    assert header[1:3] == b"\x01\x26", header[:4].hex()  # {1: -7, …}
    parts[0] = header[:2] + b"\x38\x06" + header[3:]


COSE_BREAKAGES = {
    "cose-tampered": _flip_last_byte,
    "cose-respelt": _respell_protected,
    # A detached payload: the registry's manifest could then be anything.
    "cose-detached": lambda parts: parts.__setitem__(2, None),
    # A signed label again unsigned: which one counts would be the verifier's guess.
    "cose-twice": lambda parts: parts[1].__setitem__("io.cncf.notary.signingScheme",
                                                     "notary.x509"),
}


def descriptor(body, media_type):
    return {"mediaType": media_type, "digest": image_lib.digest_of(body), "size": len(body)}


def signature_manifest(subject, envelope_bytes, envelope_type=JWS_TYPE):
    """(manifest bytes, blobs) as `notation sign` writes a signature in OCI 1.1 form."""
    config = b"{}"
    manifest = {"schemaVersion": 2, "mediaType": image_lib.OCI_MANIFEST,
                "artifactType": SIGNATURE_TYPE,
                "config": descriptor(config, EMPTY_CONFIG),
                "layers": [descriptor(envelope_bytes, envelope_type)],
                "subject": subject,
                "annotations": {"io.cncf.notary.x509chain.thumbprint#S256": "[]"}}
    blobs = {image_lib.digest_of(config): config,
             image_lib.digest_of(envelope_bytes): envelope_bytes}
    return json.dumps(manifest, separators=(",", ":")).encode(), blobs


def referrers_index(signatures):
    """The tag schema's index listing signature manifests (list of bytes)."""
    return json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX,
                       "manifests": [dict(descriptor(m, image_lib.OCI_MANIFEST),
                                          artifactType=SIGNATURE_TYPE)
                                     for m in signatures]},
                      separators=(",", ":")).encode()


def notary_images(pki):
    """The Notation tests' images: {name: spec} as images.py makes them, each spec with
    "referrers": {subject digest: [(signature manifest bytes, blobs)]} to push beside."""
    images = {}
    signers = pki.signers

    def image(tag):
        layer = image_lib.make_layer(f"notary-{tag}", [("app/notary.txt", 500, "text")])
        manifest, media_type, blobs = image_lib.make_image([layer])
        spec = {"manifest": manifest, "media_type": media_type, "blobs": blobs,
                "extra_manifests": [], "referrers": {}}
        images[f"test/notary:{tag}"] = spec
        return spec, descriptor(manifest, media_type)

    def attach(spec, subject, *envelopes, envelope_type=JWS_TYPE):
        spec["referrers"].setdefault(subject["digest"], []).extend(
            signature_manifest(subject, e, envelope_type) for e in envelopes)

    for tag in ("ecdsa", "rsa", "rsa3072", "expired", "serverauth", "sha1", "revocable",
                "mallory-org", "untrusted", "ocsp-good", "ocsp-revoked", "crl-good",
                "crl-revoked"):
        spec, subject = image(tag)
        attach(spec, subject, envelope(signers[tag], subject))
    image("unsigned")
    if "ocsp-good" in signers:
        # A second image by the same signing certificate: its revocation answer is kept.
        spec, subject = image("ocsp-good-2")
        attach(spec, subject, envelope(signers["ocsp-good"], subject))
    spec, subject = image("timestamped")
    attach(spec, subject, envelope(pki.expiring_signer(), subject, timestamp=pki))
    spec, subject = image("expiring")
    attach(spec, subject, envelope(pki.expiring_signer(), subject))
    if "tsa-revoked" in pki.authorities:
        spec, subject = image("timestamped-by-revoked-tsa")
        attach(spec, subject, envelope(signers["ecdsa"], subject, timestamp=pki,
                                       timestamp_authority="tsa-revoked"))
    spec, subject = image("twosigs")
    attach(spec, subject, envelope(signers["untrusted"], subject),
           envelope(signers["ecdsa"], subject))
    spec, subject = image("wrongdigest")
    other = images["test/notary:ecdsa"]
    attach(spec, subject, envelope(signers["ecdsa"],
                                   descriptor(other["manifest"], other["media_type"])))
    spec, subject = image("wrongsize")
    attach(spec, subject, envelope(signers["ecdsa"], dict(subject, size=subject["size"] + 1)))
    spec, subject = image("unknowncrit")
    attach(spec, subject, envelope(signers["ecdsa"], subject, critical_extra=True))
    spec, subject = image("sigexpired")
    attach(spec, subject, envelope(signers["ecdsa"], subject, signing_time=LONG_AGO,
                                   expiry=datetime.datetime(2021, 1, 1)))
    spec, subject = image("tampered")
    good = envelope(signers["ecdsa"], subject)
    parsed = json.loads(good)
    parsed["signature"] = parsed["signature"][:-4] + ("AAAA" if parsed["signature"][-4:] != "AAAA"
                                                      else "BBBB")
    attach(spec, subject, json.dumps(parsed).encode())
    # COSE envelopes: by RSA-PSS and ECDSA, with an unknown critical attribute, tampered.
    for tag, signer in (("cose-ecdsa", "ecdsa"), ("cose-rsa", "rsa")):
        spec, subject = image(tag)
        attach(spec, subject, cose_envelope(signers[signer], subject), envelope_type=COSE_TYPE)
    spec, subject = image("cose-unknowncrit")
    attach(spec, subject, cose_envelope(signers["ecdsa"], subject, critical_extra=True),
           envelope_type=COSE_TYPE)
    spec, subject = image("cose-tampered")
    attach(spec, subject, rewrite_cose(cose_envelope(signers["ecdsa"], subject), _flip_last_byte),
           envelope_type=COSE_TYPE)
    # Larger than any envelope: refused by its descriptor's size, never downloaded.
    spec, subject = image("bigenvelope")
    attach(spec, subject, b"{" + b" " * (5 * 1024 * 1024) + b"}")

    # Multi-platform: one index signed on the index, one signed on its amd64 manifest only.
    for tag, on_index in (("index-signed", True), ("platform-signed", False)):
        layer = image_lib.make_layer(f"notary-{tag}", [("app/notary.txt", 500, "text")])
        amd64 = image_lib.make_image([layer])
        arm64 = image_lib.make_image([layer], arch="arm64")
        index_bytes, index_type = image_lib.make_index([
            (amd64[0], amd64[1], {"os": "linux", "architecture": "amd64"}, None),
            (arm64[0], arm64[1], {"os": "linux", "architecture": "arm64"}, None)])
        blobs = dict(amd64[2])
        blobs.update(arm64[2])
        spec = {"manifest": index_bytes, "media_type": index_type, "blobs": blobs,
                "extra_manifests": [(amd64[0], amd64[1]), (arm64[0], arm64[1])],
                "referrers": {}}
        images[f"test/notary:{tag}"] = spec
        subject = descriptor(index_bytes, index_type) if on_index else descriptor(amd64[0],
                                                                                  amd64[1])
        attach(spec, subject, envelope(signers["ecdsa"], subject))
    return images


def push_notary(pusher, images):
    """The images, their signature manifests, and per subject the tag schema's index."""
    image_lib.push_all(pusher, images)
    for name, spec in images.items():
        repo = name.partition(":")[0]
        for subject, signatures in spec["referrers"].items():
            for manifest, blobs in signatures:
                for blob in blobs.values():
                    pusher.push_blob(repo, blob)
                pusher.push_manifest(repo, image_lib.digest_of(manifest), manifest,
                                     image_lib.OCI_MANIFEST)
            pusher.push_manifest(repo, subject.replace(":", "-"),
                                 referrers_index([m for m, _ in signatures]), OCI_INDEX)


def write_fixtures(directory):
    """For the unit tests: a Notation directory (a trust policy and its trust store) and
    envelopes over one subject, by each signer."""
    pki = Pki()
    pki.write_trust_store(os.path.join(directory, "truststore"))
    with open(os.path.join(directory, "trustpolicy.json"), "w") as f:
        json.dump({"version": "1.0", "trustPolicies": [{
            "name": "acme", "registryScopes": ["*"],
            "signatureVerification": {"level": "strict"}, "trustStores": ["ca:acme"],
            "trustedIdentities": ["x509.subject: C=US, ST=WA, O=Acme"]}]}, f, indent=2)
    subject = {"mediaType": image_lib.OCI_MANIFEST, "digest": "sha256:" + "ab" * 32, "size": 1234}
    with open(os.path.join(directory, "subject.json"), "w") as f:
        json.dump(subject, f)
    # Each signer's signature in both envelopes: label.jws and label.cose.
    for form, make in (("jws", envelope), ("cose", cose_envelope)):
        cases = {label: make(signer, subject) for label, signer in pki.signers.items()}
        cases.update({
            "unknowncrit": make(pki.signers["ecdsa"], subject, critical_extra=True),
            "sigexpired": make(pki.signers["ecdsa"], subject, signing_time=LONG_AGO,
                               expiry=datetime.datetime(2021, 1, 1)),
            "wrongalg": make(pki.signers["rsa3072"], subject, alg="PS256"),
        })
        for label, body in cases.items():
            with open(os.path.join(directory, f"{label}.{form}"), "wb") as f:
                f.write(body)
    # COSE messages a signer never writes, each made from a valid one.
    for label, change in COSE_BREAKAGES.items():
        with open(os.path.join(directory, f"{label}.cose"), "wb") as f:
            f.write(rewrite_cose(cose_envelope(pki.signers["ecdsa"], subject), change))

def write_revocation_fixtures(directory):
    """For checkRevocation's unit tests (tests/puller/trust/revocation_test.cpp): a CA, with its
    key for the OCSP answers a test signs as it runs (they must be current), certificates it
    issued naming a CRL (and "compromised" an OCSP responder too), and that CRL, current until
    FAR_AHEAD: "held" on certificateHold, "lifted" (a hold removed: removeFromCRL),
    "compromised" revoked for keyCompromise with an invalidityDate of 2024-01-01, "revoked"
    with no date, and "good" not listed; "critical.crl" lists "revoked" with a critical entry
    extension nobody knows. And two signatures by "compromised" of the signingAuthority scheme
    over subject.json, signed (so its signing service says) on 2023-06-01 and 2024-06-01, with
    a trust store whose signingAuthority store "acme" holds the CA."""
    os.makedirs(directory, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = certificate(name("Acme Revocation CA"), ca_key, ca=True, usages=())
    crl_url = "http://127.0.0.1:9/revocation.crl"
    listed = {"held": (x509.ReasonFlags.certificate_hold, None),
              "lifted": (x509.ReasonFlags.remove_from_crl, None),
              "compromised": (x509.ReasonFlags.key_compromise, datetime.datetime(2024, 1, 1)),
              "revoked": (None, None)}
    builder = (x509.CertificateRevocationListBuilder().issuer_name(ca.subject)
               .last_update(LONG_AGO).next_update(FAR_AHEAD))
    issued = {}
    for label in ("held", "lifted", "compromised", "revoked", "good"):
        # "compromised" names an OCSP responder too, asked first.
        key = ec.generate_private_key(ec.SECP256R1())
        cert = certificate(name(f"acme-{label}"), key,
                           issuer=(ca.subject, ca_key), crl=crl_url,
                           ocsp="http://127.0.0.1:9/ocsp" if label == "compromised" else None)
        issued[label] = (key, [cert, ca])
        with open(os.path.join(directory, f"{label}.pem"), "wb") as f:
            f.write(pem(cert))
        if label not in listed:
            continue
        reason, invalid_since = listed[label]
        entry = (x509.RevokedCertificateBuilder().serial_number(cert.serial_number)
                 .revocation_date(datetime.datetime(2025, 1, 1)))
        if reason is not None:
            entry = entry.add_extension(x509.CRLReason(reason), critical=False)
        if invalid_since is not None:
            entry = entry.add_extension(x509.InvalidityDate(invalid_since), critical=False)
        builder = builder.add_revoked_certificate(entry.build())
    with open(os.path.join(directory, "ca.pem"), "wb") as f:
        f.write(pem(ca))
    with open(os.path.join(directory, "ca.key"), "wb") as f:
        f.write(ca_key.private_bytes(serialization.Encoding.PEM,
                                     serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()))
    with open(os.path.join(directory, "revocation.crl"), "wb") as f:
        f.write(builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER))
    unknown = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.55555.1"), b"\x05\x00")
    critical = (x509.CertificateRevocationListBuilder().issuer_name(ca.subject)
                .last_update(LONG_AGO).next_update(FAR_AHEAD)
                .add_revoked_certificate(
                    x509.RevokedCertificateBuilder()
                    .serial_number(issued["revoked"][1][0].serial_number)
                    .revocation_date(datetime.datetime(2025, 1, 1))
                    .add_extension(unknown, critical=True).build()))
    with open(os.path.join(directory, "critical.crl"), "wb") as f:
        f.write(critical.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER))
    subject = {"mediaType": image_lib.OCI_MANIFEST, "digest": "sha256:" + "cd" * 32, "size": 4321}
    with open(os.path.join(directory, "subject.json"), "w") as f:
        json.dump(subject, f)
    for year in (2023, 2024):
        with open(os.path.join(directory, f"compromised-signed-{year}.jws"), "wb") as f:
            f.write(envelope(issued["compromised"], subject, signing_authority=True,
                             signing_time=datetime.datetime(year, 6, 1)))
    store = os.path.join(directory, "truststore", "x509", "signingAuthority", "acme")
    os.makedirs(store, exist_ok=True)
    with open(os.path.join(store, "ca.pem"), "wb") as f:
        f.write(pem(ca))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "fixtures":
        write_fixtures(sys.argv[2])
    elif len(sys.argv) == 3 and sys.argv[1] == "revocation-fixtures":
        write_revocation_fixtures(sys.argv[2])
    else:
        sys.exit(__doc__)
