"""Test PKI: a CA, a TLS server certificate for the loopback names the tests use, and the
token-signing key + certificate the registry's `auth: token` trusts. Made fresh per stack."""
import datetime
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID


def _key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def _name(common):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _pem_key(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def make_pki(directory, dns_names, ip_addresses):
    """Writes ca.pem, server.pem, server-key.pem, expired.pem, expired-key.pem, token.pem,
    token-key.pem, other-ca.pem."""
    os.makedirs(directory, exist_ok=True)
    now = datetime.datetime.utcnow() - datetime.timedelta(minutes=5)
    later = now + datetime.timedelta(days=2)

    def ca(common):
        key = _key()
        cert = (x509.CertificateBuilder().subject_name(_name(common)).issuer_name(_name(common))
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now).not_valid_after(later)
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(key, hashes.SHA256()))
        return key, cert

    ca_key, ca_cert = ca("pullagent test CA")
    _write(os.path.join(directory, "ca.pem"), ca_cert.public_bytes(serialization.Encoding.PEM))
    _, other_cert = ca("some other CA")
    _write(os.path.join(directory, "other-ca.pem"),
           other_cert.public_bytes(serialization.Encoding.PEM))

    server_key = _key()
    san = [x509.DNSName(n) for n in dns_names] + \
          [x509.IPAddress(ipaddress.ip_address(a)) for a in ip_addresses]
    server = (x509.CertificateBuilder().subject_name(_name(dns_names[0]))
              .issuer_name(ca_cert.subject).public_key(server_key.public_key())
              .serial_number(x509.random_serial_number())
              .not_valid_before(now).not_valid_after(later)
              .add_extension(x509.SubjectAlternativeName(san), critical=False)
              .sign(ca_key, hashes.SHA256()))
    _write(os.path.join(directory, "server.pem"), server.public_bytes(serialization.Encoding.PEM))
    _write(os.path.join(directory, "server-key.pem"), _pem_key(server_key))

    # The same names on a certificate that expired yesterday: what a registry that forgot to
    # renew serves.
    expired_key = _key()
    expired = (x509.CertificateBuilder().subject_name(_name(dns_names[0]))
               .issuer_name(ca_cert.subject).public_key(expired_key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(days=3))
               .not_valid_after(now - datetime.timedelta(days=1))
               .add_extension(x509.SubjectAlternativeName(san), critical=False)
               .sign(ca_key, hashes.SHA256()))
    _write(os.path.join(directory, "expired.pem"), expired.public_bytes(serialization.Encoding.PEM))
    _write(os.path.join(directory, "expired-key.pem"), _pem_key(expired_key))

    _write(os.path.join(directory, "aad-key.pem"), _pem_key(_key()))  # emulated AAD signer

    token_key = _key()
    token = (x509.CertificateBuilder().subject_name(_name("pullagent test token issuer"))
             .issuer_name(_name("pullagent test token issuer"))
             .public_key(token_key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now).not_valid_after(later)
             .sign(token_key, hashes.SHA256()))
    _write(os.path.join(directory, "token.pem"), token.public_bytes(serialization.Encoding.PEM))
    _write(os.path.join(directory, "token-key.pem"), _pem_key(token_key))
