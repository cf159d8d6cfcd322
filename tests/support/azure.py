"""Emulators of the Azure endpoints that cannot run here, to their wire formats
(docs/protocols.md §1, §2, §5, §10): the managed-identity endpoints (IMDS and App Service's
IDENTITY_ENDPOINT), the ACR front (token exchange, then the real docker-registry behind it,
blobs redirected to a data endpoint) and Key Vault. Tokens are real RS256 JWTs; the ACR access
tokens are signed with the key the registry trusts, so the registry verifies them itself."""
import base64
import json
import time
import urllib.parse

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

import servers

ACR_RESOURCE = "https://containerregistry.azure.net"
VAULT_RESOURCE = "https://vault.azure.net"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"


def _b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class AadKey:
    """Signs and verifies the emulated AAD (and ACR refresh) tokens."""

    def __init__(self, key_path):
        with open(key_path, "rb") as f:
            self.key = serialization.load_pem_private_key(f.read(), password=None)

    def sign(self, claims):
        header = _b64(json.dumps({"typ": "JWT", "alg": "RS256"}).encode())
        payload = _b64(json.dumps(claims).encode())
        signature = self.key.sign(f"{header}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{header}.{payload}.{_b64(signature)}"

    def verify(self, token):
        """The claims of a token this key signed and that has not expired, else None."""
        try:
            header, payload, signature = token.split(".")
            self.key.public_key().verify(_unb64(signature), f"{header}.{payload}".encode(),
                                         padding.PKCS1v15(), hashes.SHA256())
            claims = json.loads(_unb64(payload))
        except Exception:  # noqa: BLE001 - any malformed token is simply invalid
            return None
        return claims if claims.get("exp", 0) > time.time() else None


class Identities:
    """Managed identities of the emulated site: the system-assigned one and user-assigned ones
    by client id (and ARM resource id)."""

    def __init__(self):
        self.system_oid = "00000000-0000-0000-0000-00000000a001"
        self.user = {"11111111-2222-3333-4444-555555555555": "00000000-0000-0000-0000-00000000b001",
                     "66666666-7777-8888-9999-000000000000": "00000000-0000-0000-0000-00000000b002"}
        self.resource_ids = {
            "/subscriptions/s/resourcegroups/rg/providers/microsoft.managedidentity/"
            "userassignedidentities/kv-identity": "66666666-7777-8888-9999-000000000000"}


def make_identity_handler(aad, identities, recorder, state, app_service_header):
    """IMDS (GET /metadata/identity/oauth2/token, Metadata: true) and the App Service endpoint
    (GET /msi/token, X-IDENTITY-HEADER). Scriptable: state["fail"] is a list of statuses the next
    requests get; state["delays"] a list of seconds the next requests wait before any answer (a
    slow or hanging endpoint); state["system_enabled"]; state["lifetime"] seconds."""

    class IdentityHandler(servers.BaseHandler):
        def do_POST(self):
            if self.path.startswith("/__control/"):
                return self.handle_control(recorder, state)
            self.send_json(405, {})

        def do_GET(self):
            if self.path.startswith("/__control/"):
                return self.handle_control(recorder, state)
            parsed = urllib.parse.urlparse(self.path)
            query = {k: v[0] for k, v in urllib.parse.parse_qs(parsed.query).items()}
            imds = parsed.path == "/metadata/identity/oauth2/token"
            entry = {"path": parsed.path, "query": query,
                     "metadata": self.headers.get("Metadata"),
                     "identity_header": self.headers.get("X-IDENTITY-HEADER") is not None}
            recorder.add(entry)
            if imds and self.headers.get("Metadata") != "true":
                return self.send_json(400, {"error": "invalid_request",
                                            "error_description": "Required metadata header not specified"})
            if not imds:
                if parsed.path != "/msi/token":
                    return self.send_json(404, {"error": "not_found"})
                if self.headers.get("X-IDENTITY-HEADER") != app_service_header:
                    return self.send_json(401, {"error": "unauthorized"})
            if query.get("api-version") != ("2018-02-01" if imds else "2019-08-01"):
                return self.send_json(400, {"error": "invalid_request", "error_description": "api-version"})
            with recorder.lock:
                failures = state.setdefault("fail", [])
                failure = failures.pop(0) if failures else None
                delays = state.setdefault("delays", [])
                delay = delays.pop(0) if delays else 0
            if delay:
                time.sleep(delay)
            if failure:
                return self.send_json(failure, {"error": "temporarily_unavailable",
                                                "error_description": "injected"})
            resource = query.get("resource", "")
            client_id = query.get("client_id")
            resource_id = query.get("msi_res_id" if imds else "mi_res_id")
            if resource_id:
                client_id = identities.resource_ids.get(resource_id.lower())
                if client_id is None:
                    return self.send_json(400, {"error": "invalid_request",
                                                "error_description": "Identity not found"})
            if client_id:
                oid = identities.user.get(client_id.lower())
                if oid is None:
                    return self.send_json(400, {"error": "invalid_request",
                                                "error_description": "Identity not found"})
            else:
                if not state.get("system_enabled", True):
                    return self.send_json(400, {"error": "invalid_request",
                                                "error_description": "Identity not found"})
                oid = identities.system_oid
            lifetime = int(state.get("lifetime", 3600))
            now = int(time.time())
            token = aad.sign({"aud": resource, "iss": f"https://sts.windows.net/{TENANT}/",
                              "tid": TENANT, "oid": oid, "appid": client_id or "system",
                              "iat": now, "nbf": now - 60, "exp": now + lifetime})
            body = {"access_token": token, "expires_on": str(now + lifetime),
                    "resource": resource, "token_type": "Bearer"}
            if imds:
                body.update({"refresh_token": "", "expires_in": str(lifetime),
                             "not_before": str(now - 60)})
            else:
                body["client_id"] = client_id or "system"
            entry["issued_to"] = oid
            self.send_json(200, body)

    return IdentityHandler


def make_acr_front_handler(base_handler, aad, issuer, login_server, roles, recorder, state,
                           data_endpoint, retag=None):
    """The ACR front: /oauth2/exchange and /oauth2/token served here, blobs redirected (307) to
    `data_endpoint`, everything else through the fault proxy `base_handler` to the real
    registry. `roles` maps an identity's oid to the repositories it may pull."""

    def expired_bearer(headers):
        auth = headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return False
        try:
            claims = json.loads(_unb64(auth[7:].split(".")[1]))
        except (ValueError, IndexError):
            return False
        return claims.get("exp", 0) <= time.time()

    class AcrFront(base_handler):
        def do_GET(self):
            # ACR refuses an expired access token at once; the registry behind allows a minute of
            # clock skew, so the front judges expiry itself: the request goes on without it and
            # the registry answers 401 with its challenge.
            if self.path.startswith("/v2/") and expired_bearer(self.headers):
                recorder.add({"path": self.path, "method": "GET", "expired_token": True})
                del self.headers["Authorization"]
                return super().do_GET()
            # Blobs live on the data endpoint, as with ACR's dedicated data endpoints; everything
            # else (and blob requests the registry refuses) comes from the registry itself.
            if "/blobs/" in self.path and not self.path.startswith("/__control/"):
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("host", "connection")}
                recorder.add({"path": self.path, "method": "GET", "redirected": True,
                              "authorization": "Authorization" in self.headers})
                return self.redirect({"host": data_endpoint}, headers, "GET")
            return super().do_GET()

        def do_POST(self):
            if self.path == "/__control/retag" and retag is not None and "fn" in retag:
                # Moves a tag as a `docker push` of another image under it would:
                # {"tag": "moving", "to": "lnx-v2"}.
                body = json.loads(self.read_body() or b"{}")
                retag["fn"](body["tag"], body["to"])
                return self.send_json(200, {})
            if self.path.startswith("/__control/"):
                return self.handle_control(recorder, state)
            path = urllib.parse.urlparse(self.path).path
            form = {k: v[0] for k, v in urllib.parse.parse_qs(self.read_body().decode()).items()}
            entry = {"path": path, "grant_type": form.get("grant_type"),
                     "service": form.get("service"), "scope": form.get("scope")}
            recorder.add(entry)
            if path == "/oauth2/exchange":
                claims = aad.verify(form.get("access_token", ""))
                if (form.get("grant_type") not in ("access_token", "access_token_refresh_token")
                        or claims is None or claims.get("aud") != ACR_RESOURCE
                        or form.get("service") != login_server):
                    return self.send_json(401, {"errors": [{"code": "UNAUTHORIZED",
                                                            "message": "invalid AAD token"}]})
                if claims["oid"] not in roles:
                    return self.send_json(401, {"errors": [{"code": "UNAUTHORIZED",
                                                            "message": "identity has no role on the registry"}]})
                now = int(time.time())
                refresh = aad.sign({"sub": claims["oid"], "aud": login_server, "tenant": TENANT,
                                    "grant_type": "refresh_token", "iss": "Azure Container Registry",
                                    "iat": now, "exp": now + int(state.get("refresh_lifetime", 10800))})
                return self.send_json(200, {"refresh_token": refresh})
            if path == "/oauth2/token":
                claims = aad.verify(form.get("refresh_token", ""))
                if form.get("grant_type") != "refresh_token" or claims is None \
                        or claims.get("grant_type") != "refresh_token":
                    return self.send_json(401, {"errors": [{"code": "UNAUTHORIZED",
                                                            "message": "invalid refresh token"}]})
                access = []
                for scope in form.get("scope", "").split(" "):
                    kind, _, rest = scope.partition(":")
                    name, _, actions = rest.rpartition(":")
                    if kind == "repository" and name in roles.get(claims["sub"], ()):
                        access.append({"type": "repository", "name": name,
                                       "actions": [a for a in actions.split(",") if a == "pull"]})
                token = issuer.issue(claims["sub"], access, int(state.get("access_lifetime", 4500)))
                return self.send_json(200, {"access_token": token})
            return super().do_POST()

    return AcrFront


def make_key_vault_handler(aad, secrets, readers, recorder, versions=None, disabled=()):
    """GET /secrets/<name>[/<version>]?api-version=7.4 with a Bearer token for
    https://vault.azure.net of an identity in `readers`. A (name, version) in `disabled` is a
    disabled secret version: 403 Forbidden with innererror SecretDisabled, as Key Vault answers."""

    class KeyVault(servers.BaseHandler):
        def do_POST(self):
            if self.path.startswith("/__control/"):
                return self.handle_control(recorder, servers.Settings())
            self.send_json(405, {})

        def do_GET(self):
            if self.path.startswith("/__control/"):
                return self.handle_control(recorder, servers.Settings())
            parsed = urllib.parse.urlparse(self.path)
            auth = self.headers.get("Authorization", "")
            recorder.add({"path": parsed.path, "authorization": bool(auth)})
            challenge = {"WWW-Authenticate": f'Bearer authorization="https://login.microsoftonline.com/{TENANT}", resource="{VAULT_RESOURCE}"'}
            claims = aad.verify(auth[7:]) if auth.startswith("Bearer ") else None
            if claims is None or claims.get("aud") != VAULT_RESOURCE:
                return self.send_json(401, {"error": {"code": "Unauthorized", "message": "no valid token"}}, challenge)
            if claims["oid"] not in readers:
                return self.send_json(403, {"error": {"code": "Forbidden", "message": "access denied"}})
            parts = parsed.path.strip("/").split("/")
            if len(parts) < 2 or parts[0] != "secrets" or parts[1] not in secrets:
                return self.send_json(404, {"error": {"code": "SecretNotFound", "message": "not found"}})
            if len(parts) >= 3 and (parts[1], parts[2]) in disabled:
                return self.send_json(403, {"error": {
                    "code": "Forbidden",
                    "message": "Operation get is not allowed on a disabled secret.",
                    "innererror": {"code": "SecretDisabled"}}})
            # An older version, by its id: what a reference pinned before the secret was rotated.
            if len(parts) >= 3 and parts[2] and (parts[1], parts[2]) in (versions or {}):
                return self.send_json(200, {"value": versions[(parts[1], parts[2])],
                                            "id": f"https://vault/secrets/{parts[1]}/{parts[2]}",
                                            "attributes": {"enabled": True}})
            self.send_json(200, {"value": secrets[parts[1]],
                                 "id": f"https://vault/secrets/{parts[1]}/0123456789abcdef",
                                 "attributes": {"enabled": True}})

    return KeyVault


def make_public_endpoint_handler(recorder):
    """The registry's public endpoint when only its private endpoint may be used: every request
    gets 403 DENIED, as ACR's firewall answers."""

    class PublicEndpoint(servers.BaseHandler):
        def deny(self):
            recorder.add({"path": self.path})
            self.send_json(403, {"errors": [{"code": "DENIED", "message":
                                             "client with IP '203.0.113.9' is not allowed access. "
                                             "Refer https://aka.ms/acr/firewall to grant access."}]})

        def do_GET(self):
            self.deny()

        def do_POST(self):
            self.read_body()
            self.deny()

    return PublicEndpoint
