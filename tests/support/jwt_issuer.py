"""Docker registry bearer tokens (distribution's token spec): RS256 JWTs with the signing
certificate in `x5c`, which the registry verifies against its rootcertbundle."""
import base64
import json
import os
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding


def _b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class JwtIssuer:
    def __init__(self, key_path, cert_path, issuer, service):
        with open(key_path, "rb") as f:
            self.key = serialization.load_pem_private_key(f.read(), password=None)
        with open(cert_path, "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
        self.x5c = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
        self.issuer = issuer
        self.service = service

    def issue(self, subject, access, lifetime):
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]}
        claims = {"iss": self.issuer, "sub": subject, "aud": self.service, "exp": now + lifetime,
                  "nbf": now - 10, "iat": now, "jti": _b64(os.urandom(12)), "access": access}
        signing_input = (_b64(json.dumps(header, separators=(",", ":")).encode()) + "." +
                         _b64(json.dumps(claims, separators=(",", ":")).encode()))
        signature = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return signing_input + "." + _b64(signature)


def parse_scopes(values):
    """`repository:name:pull,push` (a name may hold one ':' for a port) -> access entries."""
    access = []
    for value in values:
        for scope in value.split(" "):
            if not scope:
                continue
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            access.append({"type": kind, "name": name, "actions": [a for a in actions.split(",") if a]})
    return access
