#!/usr/bin/env python3
"""Starts the local registry stack the integration tests and the demo pull from, all on
loopback with free ports and TLS from a freshly generated CA:

  anon         Debian's docker-registry (distribution 2.8), anonymous pulls
  basic        the same with htpasswd Basic auth
  token        the same with `auth: token`, trusting the test token server's signing cert
  token_server issues RS256 JWTs the registry verifies (distribution token spec)
  proxy_token  fault-injecting proxy in front of `token`
  proxy_anon   fault-injecting proxy in front of `anon`
  cache        docker-registry in proxy mode (a pull-through cache) of `token`, through
               cache_upstream (a recording proxy: what the origin served the cache)
  mirror       recording, fault-injecting proxy in front of `cache` that refuses any
               Authorization it was not given (the origin's credentials must never reach it)
  storage      "blob storage" on 127.0.0.2 that proxies redirect blobs to (must see no auth)
  storage_http the same over plain HTTP on 127.0.0.3 (https -> http redirects)

Pushes the standard test images into every registry, writes DIR/stack.json describing it all,
prints READY and runs until SIGTERM/SIGINT or until stdin closes (so a dying parent takes the
stack with it)."""
import argparse
import datetime
import http.client
import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import azure  # noqa: E402
import cosign  # noqa: E402
import notation  # noqa: E402
import images as image_lib  # noqa: E402
import ports  # noqa: E402
import servers  # noqa: E402
from jwt_issuer import JwtIssuer  # noqa: E402
from testpki import make_pki  # noqa: E402

SERVICE = "pullagent-test-registry"
ISSUER = "pullagent-test-issuer"
BASIC_USER, BASIC_PASSWORD = "alice", "alice-Secret-Pass-1"
TOKEN_USER, TOKEN_PASSWORD = "bob", "bob-Secret-Pass-2"
# The token registry's second user: alice/... repositories are hers alone (bob's are his).
TOKEN_OWNER, TOKEN_OWNER_PASSWORD = "alice", "alice-Token-Pass-3"

children = []


def start_registry(workdir, name, pki, auth_yaml, env=None):
    """docker-registry on a free loopback port (tests/support/ports.py): ready when its /v2/
    answers with the instance header it was configured with, over TLS from the stack's CA."""
    root = os.path.join(workdir, name)
    os.makedirs(os.path.join(root, "data"), exist_ok=True)
    log_path = os.path.join(root, "registry.log")
    instance = ports.nonce()
    context = ssl.create_default_context(cafile=os.path.join(pki, "ca.pem"))

    def start(port):
        config = f"""version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root}/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
  secret: pullagent-test-{name}
  headers:
    X-Pullagent-Instance: [{instance}]
  tls:
    certificate: {pki}/server.pem
    key: {pki}/server-key.pem
{auth_yaml}"""
        config_path = os.path.join(root, "config.yml")
        with open(config_path, "w") as f:
            f.write(config)
        with open(log_path, "ab") as log:
            return subprocess.Popen(["docker-registry", "serve", config_path], stdout=log,
                                    stderr=log, preexec_fn=ports.die_with_parent,
                                    env=dict(os.environ, **(env or {})))

    def ready(port):
        try:
            conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=2)
            conn.request("GET", "/v2/")
            response = conn.getresponse()
            response.read()
            conn.close()
            return response.getheader("X-Pullagent-Instance") == instance
        except (OSError, http.client.HTTPException):
            return False

    port, process = ports.start_on_free_port(f"docker-registry '{name}'", start, ready,
                                             log_path=log_path)
    children.append(process)
    return port


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--no-push", action="store_true")
    args = parser.parse_args()
    workdir = os.path.abspath(args.dir)
    os.makedirs(workdir, exist_ok=True)
    pki = os.path.join(workdir, "pki")
    make_pki(pki, ["localhost", "registry.pullagent.test", "myreg.azurecr.io",
                   "myreg.westus.data.azurecr.io", "myvault.vault.azure.net"],
             ["127.0.0.1", "127.0.0.2", "::1"])
    ca = os.path.join(pki, "ca.pem")

    # Token server first: the token registry's config names its realm.
    issuer = JwtIssuer(os.path.join(pki, "token-key.pem"), os.path.join(pki, "token.pem"),
                       ISSUER, SERVICE)
    token_recorder, token_state = servers.Recorder(), servers.Settings(expires_in=300)
    token_listener = ports.listen()
    token_port = token_listener.getsockname()[1]
    servers.serve_tls(servers.make_token_handler(issuer, {TOKEN_USER: TOKEN_PASSWORD,
                                                                  TOKEN_OWNER: TOKEN_OWNER_PASSWORD},
                                                 token_recorder, token_state),
                      token_listener, os.path.join(pki, "server.pem"),
                      os.path.join(pki, "server-key.pem"))

    htpasswd = os.path.join(workdir, "htpasswd")
    with open(htpasswd, "w") as f:
        f.write(subprocess.check_output(["htpasswd", "-Bbn", BASIC_USER, BASIC_PASSWORD],
                                        text=True))
    acr_login = "myreg.azurecr.io"
    # The ACR front's port is in the ACR registry's config (its realm), so it is bound first; the
    # same name on the public route (127.0.0.4) has the same port.
    acr_front_listener, acr_public_listener = ports.listen_pair("127.0.0.1", "127.0.0.4")
    acr_front_port = acr_front_listener.getsockname()[1]
    registry_ports = {
        "acr": start_registry(workdir, "acr", pki, f"""auth:
  token:
    realm: https://{acr_login}:{acr_front_port}/oauth2/token
    service: {acr_login}
    issuer: {ISSUER}
    rootcertbundle: {pki}/token.pem
"""),
        "anon": start_registry(workdir, "anon", pki, ""),
        "basic": start_registry(workdir, "basic", pki, f"""auth:
  htpasswd:
    realm: pullagent-test
    path: {htpasswd}
"""),
        "token": start_registry(workdir, "token", pki, f"""auth:
  token:
    realm: https://127.0.0.1:{token_port}/token
    service: {SERVICE}
    issuer: {ISSUER}
    rootcertbundle: {pki}/token.pem
"""),
    }

    storage = {}
    storage_recorder = servers.Recorder()
    storage_state = servers.Settings(faults=[])
    storage_listener = ports.listen("127.0.0.2")
    storage_port = storage_listener.getsockname()[1]
    servers.serve_tls(servers.make_storage_handler(storage, storage_recorder, storage_state),
                      storage_listener, os.path.join(pki, "server.pem"),
                      os.path.join(pki, "server-key.pem"))
    storage_http_listener = ports.listen("127.0.0.3")
    storage_http_port = storage_http_listener.getsockname()[1]
    servers.serve_tls(servers.make_storage_handler(storage, storage_recorder, storage_state),
                      storage_http_listener, None, None)

    proxies = {}
    for name, upstream in (("proxy_token", "token"), ("proxy_anon", "anon")):
        recorder, state = servers.Recorder(), servers.Settings(faults=[])
        listener = ports.listen()
        proxies[name] = listener.getsockname()[1]
        servers.serve_tls(servers.make_proxy_handler("127.0.0.1", registry_ports[upstream], ca, recorder,
                                                     state, storage),
                          listener, os.path.join(pki, "server.pem"),
                          os.path.join(pki, "server-key.pem"))

    # A pull-through cache: the distribution registry in proxy mode, its upstream the token
    # registry (through a recording proxy, which counts what the origin served the cache), with
    # the test token user's credentials; and a recording, fault-injecting mirror in front of it
    # that refuses credentials it was not given.
    cache_upstream_recorder = servers.Recorder()
    cache_upstream_listener = ports.listen()
    cache_upstream_port = cache_upstream_listener.getsockname()[1]
    servers.serve_tls(servers.make_proxy_handler("127.0.0.1", registry_ports["token"], ca,
                                                 cache_upstream_recorder,
                                                 servers.Settings(faults=[]), storage),
                      cache_upstream_listener, os.path.join(pki, "server.pem"),
                      os.path.join(pki, "server-key.pem"))
    proxies["cache_upstream"] = cache_upstream_port
    registry_ports["cache"] = start_registry(workdir, "cache", pki, f"""proxy:
  remoteurl: https://127.0.0.1:{cache_upstream_port}
  username: {TOKEN_USER}
  password: {TOKEN_PASSWORD}
""", env={"SSL_CERT_FILE": ca})
    mirror_recorder = servers.Recorder()
    mirror_listener = ports.listen()
    proxies["mirror"] = mirror_listener.getsockname()[1]
    servers.serve_tls(servers.make_proxy_handler("127.0.0.1", registry_ports["cache"], ca, mirror_recorder,
                                                 servers.Settings(faults=[], mirror=True), storage),
                      mirror_listener, os.path.join(pki, "server.pem"),
                      os.path.join(pki, "server-key.pem"))

    # Azure: managed identity endpoints, the ACR front with blobs on a data endpoint, Key Vault.
    aad = azure.AadKey(os.path.join(pki, "aad-key.pem"))
    identities = azure.Identities()
    identity_header = "emulated-identity-header-" + os.urandom(8).hex()
    identity_recorder, identity_state = servers.Recorder(), servers.Settings(fail=[])
    imds_listener = ports.listen()
    imds_port = imds_listener.getsockname()[1]
    servers.serve_tls(azure.make_identity_handler(aad, identities, identity_recorder, identity_state,
                                                  identity_header), imds_listener, None, None)
    acr_issuer = JwtIssuer(os.path.join(pki, "token-key.pem"), os.path.join(pki, "token.pem"),
                           ISSUER, acr_login)
    data_endpoint = f"https://myreg.westus.data.azurecr.io:{storage_port}"
    acr_recorder = servers.Recorder()
    acr_state = servers.Settings(faults=[])
    retag = {}  # filled once the website images are pushed
    roles = {identities.system_oid: ["privatewebsite"],
             identities.user["11111111-2222-3333-4444-555555555555"]: ["privatewebsite"]}
    servers.serve_tls(azure.make_acr_front_handler(
        servers.make_proxy_handler("127.0.0.1", registry_ports["acr"], ca, acr_recorder, acr_state, storage),
        aad, acr_issuer, acr_login, roles, acr_recorder, acr_state, data_endpoint, retag),
        acr_front_listener, os.path.join(pki, "server.pem"), os.path.join(pki, "server-key.pem"))
    # The same registry name on the public route (127.0.0.4, same port): denied, as a
    # private-endpoint-only ACR answers the public internet.
    servers.serve_tls(azure.make_public_endpoint_handler(servers.Recorder()), acr_public_listener,
                      os.path.join(pki, "server.pem"),
                      os.path.join(pki, "server-key.pem"))
    # A registry name whose certificate expired yesterday (it answers like the public endpoint:
    # nothing gets past its TLS).
    expired_listener = ports.listen()
    expired_port = expired_listener.getsockname()[1]
    servers.serve_tls(azure.make_public_endpoint_handler(servers.Recorder()), expired_listener,
                      os.path.join(pki, "expired.pem"), os.path.join(pki, "expired-key.pem"))
    kv_listener = ports.listen()
    kv_port = kv_listener.getsockname()[1]
    kv_recorder = servers.Recorder()
    servers.serve_tls(azure.make_key_vault_handler(
        aad, {"acr-password": BASIC_PASSWORD, "acr-username": BASIC_USER},
        [identities.system_oid, identities.user["66666666-7777-8888-9999-000000000000"]], kv_recorder,
        versions={("acr-password", "00000000000000000000000000000001"): "rotated-away-password"},
        disabled={("acr-password", "00000000000000000000000000000002")}),
        kv_listener, os.path.join(pki, "server.pem"), os.path.join(pki, "server-key.pem"))

    catalog = image_lib.standard_images()
    disk = image_lib.disk_images()
    # The signature tests' images, signed in the anonymous registry by fresh keys whose public
    # halves are written beside the stack (cosign.py: python3-cryptography, not our code).
    cosign_keys_dir = os.path.join(workdir, "cosign-keys")
    signing_keys = cosign.write_keys(cosign_keys_dir)
    signed = cosign.signed_images(f"127.0.0.1:{registry_ports['anon']}", signing_keys)
    # Notary Project signatures (notation.py: python3-cryptography and python3-jwcrypto), listed
    # through the tag schema's index, as `notation sign` writes them to a registry without the
    # referrers API; the CAs' roots are written as a Notation trust store.
    # Their OCSP responder and CRL server: the certificates name it, so its port comes first.
    revocation_listener = ports.listen()
    revocation_url = f"http://127.0.0.1:{revocation_listener.getsockname()[1]}"
    notary_pki = notation.Pki(revocation_base=revocation_url)
    revocation_recorder = servers.Recorder()
    servers.serve_tls(notation.make_revocation_handler(notary_pki, revocation_recorder),
                      revocation_listener, None, None)
    notation_store = os.path.join(workdir, "notation", "truststore")
    notary_pki.write_trust_store(notation_store)
    notary = notation.notary_images(notary_pki)
    website = image_lib.website_images()
    # A tenant's private image: alice/private:v1 in the Basic registry and alice/app:v1 in the
    # token registry (alice's alone there), nowhere else. Its bytes are what another tenant
    # who knows its digests must never get.
    private = image_lib.private_images()
    if not args.no_push:
        import base64
        basic = "Basic " + base64.b64encode(f"{BASIC_USER}:{BASIC_PASSWORD}".encode()).decode()
        auth_for = {
            "anon": lambda repo: None,
            "basic": lambda repo: basic,
            "token": lambda repo: "Bearer " + issuer.issue(
                "pusher", [{"type": "repository", "name": repo, "actions": ["pull", "push"]}], 600),
        }
        def fill(name, port):
            pusher = image_lib.Pusher(f"https://127.0.0.1:{port}", ca, auth_for[name])
            image_lib.push_all(pusher, catalog)
            if name == "anon":
                image_lib.push_all(pusher, disk)
                cosign.push_signed(pusher, signed)
                notation.push_notary(pusher, notary)
            if name in ("basic", "token"):
                repo = "alice/private" if name == "basic" else "alice/app"
                image_lib.push_all(pusher, {f"{repo}:v1": private["private:v1"]})

        # The seed's private website: lnx-v1 and lnx-v2 in the emulated ACR.
        acr_pusher = image_lib.Pusher(f"https://127.0.0.1:{registry_ports['acr']}", ca, lambda repo: "Bearer " + acr_issuer.issue(
            "pusher", [{"type": "repository", "name": repo, "actions": ["pull", "push"]}], 600))

        def fill_acr():
            for tag, spec in website.items():
                for blob in spec["blobs"].values():
                    acr_pusher.push_blob("privatewebsite", blob)
                acr_pusher.push_manifest("privatewebsite", tag, spec["manifest"],
                                         spec["media_type"])

        # Each registry filled on a thread of its own: they are separate processes, and a push
        # mostly waits for the registry's answer. The cache is filled by pulls, never pushed to.
        failures = []

        def guarded(target, *args):
            try:
                target(*args)
            except Exception as error:  # noqa: BLE001 (raised below, on the main thread)
                failures.append(error)
        fillers = [threading.Thread(target=guarded, args=(fill, name, port))
                   for name, port in registry_ports.items() if name not in ("acr", "cache")]
        fillers.append(threading.Thread(target=guarded, args=(fill_acr,)))
        for filler in fillers:
            filler.start()
        for filler in fillers:
            filler.join()
        if failures:
            raise failures[0]

        def move_tag(tag, to):
            spec = website[to]
            acr_pusher.push_manifest("privatewebsite", tag, spec["manifest"], spec["media_type"])
        # "moving" starts at lnx-v1; tests move it with /__control/retag on the ACR front.
        move_tag("moving", "lnx-v1")
        retag["fn"] = move_tag

    description = {
        "ca": ca,
        "other_ca": os.path.join(pki, "other-ca.pem"),
        "registries": {name: f"127.0.0.1:{port}" for name, port in registry_ports.items()},
        "proxies": {name: f"127.0.0.1:{port}" for name, port in proxies.items()},
        "token_server": f"127.0.0.1:{token_port}",
        "expired_tls": f"127.0.0.1:{expired_port}",
        "storage": f"https://127.0.0.2:{storage_port}",
        "storage_http": f"http://127.0.0.3:{storage_http_port}",
        "basic_user": BASIC_USER, "basic_password": BASIC_PASSWORD,
        "token_user": TOKEN_USER, "token_password": TOKEN_PASSWORD,
        "token_owner": TOKEN_OWNER, "token_owner_password": TOKEN_OWNER_PASSWORD,
        "private_image": dict(image_lib.summary(private)["private:v1"],
                              manifest_text=private["private:v1"]["manifest"].decode(),
                              media_type=private["private:v1"]["media_type"]),
        "images": image_lib.summary(catalog),
        "disk_images": image_lib.summary(disk),
        "signed": {"keys": {name: os.path.join(cosign_keys_dir, f"{name}.pub")
                            for name in signing_keys},
                   "images": image_lib.summary(signed)},
        "notary": {"truststore": notation_store, "images": image_lib.summary(notary),
                   "revocation": revocation_url,
                   "expiring_not_after": int(notary_pki.expiring_not_after.replace(
                       tzinfo=datetime.timezone.utc).timestamp())},
        "azure": {
            "imds": f"http://127.0.0.1:{imds_port}/metadata/identity/oauth2/token",
            "app_service": f"http://127.0.0.1:{imds_port}/msi/token",
            "identity_control": f"http://127.0.0.1:{imds_port}",
            "identity_header": identity_header,
            "acr": f"{acr_login}:{acr_front_port}",
            "acr_control": f"127.0.0.1:{acr_front_port}",
            "key_vault": f"https://myvault.vault.azure.net:{kv_port}",
            "key_vault_control": f"127.0.0.1:{kv_port}",
            "host_overrides": {acr_login: ["127.0.0.1"], "myreg.westus.data.azurecr.io": ["127.0.0.2"],
                               "myvault.vault.azure.net": ["127.0.0.1"]},
            "user_client_id": "11111111-2222-3333-4444-555555555555",
            "kv_client_id": "66666666-7777-8888-9999-000000000000",
            "kv_identity_resource_id": next(iter(identities.resource_ids)),
            "public_endpoint_address": "127.0.0.4",
            "images": image_lib.summary({f"privatewebsite:{tag}": spec for tag, spec in website.items()}),
        },
    }
    tmp = os.path.join(workdir, "stack.json.tmp")
    with open(tmp, "w") as f:
        json.dump(description, f, indent=2)
    os.rename(tmp, os.path.join(workdir, "stack.json"))
    print("READY", flush=True)

    # A flag, not a threading.Event: a signal handler that sets an Event can deadlock on the
    # Event's own lock when the signal lands while the main thread holds it (see dnsmasq.py).
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(True))
    threading.Thread(target=lambda: (sys.stdin.read(), stopping.append(True)),
                     daemon=True).start()
    while not stopping:
        time.sleep(0.2)
    for process in children:
        process.terminate()
    for process in children:
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()


if __name__ == "__main__":
    try:
        main()
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
