"""A local OpenID Connect provider stand-in that speaks the real protocol, for single sign-on tests.

A threaded HTTP server on 127.0.0.1 serves the discovery document, the JWKS, ``/authorize`` (it signs in
``provider.user`` without asking and redirects back with ``code`` and ``state``) and ``/token`` (it checks
the client's basic credentials, the single-use code, the redirect URI and the PKCE S256 verifier, and
answers with an RS256-signed ID token carrying the request's nonce)::

    with OidcProvider(client_id="leanops", client_secret="s3cret") as idp:
        idp.user = {"sub": "u-1", "email": "ada@example.com", "email_verified": True}
        ... LEANOPS_OIDC_ISSUER=idp.issuer ...

``sign(claims)`` makes ID tokens directly (for the validation tests), ``sign(claims, key=other_key())``
one that the provider's keys do not verify.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def other_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class OidcProvider:
    """The provider; ``issuer`` is its URL. ``user`` holds the claims of whoever "signs in" next."""

    def __init__(self, *, client_id: str = "leanops", client_secret: str = "idp-client-secret",
                 kid: str = "test-key-1") -> None:
        self.client_id, self.client_secret, self.kid = client_id, client_secret, kid
        self.key = other_key()
        self.user: dict[str, Any] = {"sub": "user-1", "email": "user@example.com", "email_verified": True}
        self.token_requests: list[dict[str, str]] = []  # what /token received (for assertions)
        self._codes: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.issuer = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    def __enter__(self) -> OidcProvider:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- tokens ------------------------------------------------------------------------------------

    def jwks(self) -> dict[str, Any]:
        numbers = self.key.public_key().public_numbers()
        return {"keys": [{"kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.kid,
                          "n": b64(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
                          "e": b64(numbers.e.to_bytes(3, "big"))}]}

    def claims(self, *, nonce: str, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        base = {"iss": self.issuer, "aud": self.client_id, "iat": now, "exp": now + 300, "nonce": nonce,
                **self.user}
        base.update(overrides)
        return base

    def sign(self, claims: dict[str, Any], *, key: rsa.RSAPrivateKey | None = None,
             header: dict[str, Any] | None = None) -> str:
        head = b64(json.dumps(header or {"alg": "RS256", "typ": "JWT", "kid": self.kid}).encode())
        body = b64(json.dumps(claims).encode())
        signature = (key or self.key).sign(f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{head}.{body}.{b64(signature)}"

    # -- HTTP --------------------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        idp = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def _json(self, status: int, doc: dict[str, Any]) -> None:
                body = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                if url.path == "/.well-known/openid-configuration":
                    self._json(200, {"issuer": idp.issuer, "authorization_endpoint": f"{idp.issuer}/authorize",
                                     "token_endpoint": f"{idp.issuer}/token", "jwks_uri": f"{idp.issuer}/jwks",
                                     "response_types_supported": ["code"], "subject_types_supported": ["public"],
                                     "id_token_signing_alg_values_supported": ["RS256"],
                                     "code_challenge_methods_supported": ["S256"],
                                     "token_endpoint_auth_methods_supported": ["client_secret_basic"]})
                elif url.path == "/jwks":
                    self._json(200, idp.jwks())
                elif url.path == "/authorize":
                    self._authorize({k: v[0] for k, v in parse_qs(url.query).items()})
                else:
                    self._json(404, {"error": "not_found"})

            def _authorize(self, q: dict[str, str]) -> None:
                if (q.get("response_type") != "code" or q.get("client_id") != idp.client_id
                        or "openid" not in q.get("scope", "").split() or not q.get("redirect_uri")
                        or q.get("code_challenge_method") != "S256" or not q.get("code_challenge")):
                    self._json(400, {"error": "invalid_request", "got": q})
                    return
                code = secrets.token_urlsafe(16)
                with idp._lock:
                    idp._codes[code] = {"redirect_uri": q["redirect_uri"], "nonce": q.get("nonce"),
                                        "challenge": q["code_challenge"], "user": dict(idp.user)}
                self.send_response(302)
                self.send_header("Location", q["redirect_uri"] + "?" + urlencode({"code": code,
                                                                                  "state": q.get("state", "")}))
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self) -> None:
                if urlsplit(self.path).path != "/token":
                    self._json(404, {"error": "not_found"})
                    return
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                idp.token_requests.append(form)
                expected = "Basic " + base64.b64encode(f"{idp.client_id}:{idp.client_secret}".encode()).decode()
                if self.headers.get("Authorization") != expected:
                    self._json(401, {"error": "invalid_client"})
                    return
                with idp._lock:
                    grant = idp._codes.pop(form.get("code", ""), None)  # a code works once
                verifier = form.get("code_verifier", "")
                if (grant is None or form.get("grant_type") != "authorization_code"
                        or form.get("redirect_uri") != grant["redirect_uri"]
                        or b64(hashlib.sha256(verifier.encode()).digest()) != grant["challenge"]):
                    self._json(400, {"error": "invalid_grant"})
                    return
                claims = {**idp.claims(nonce=grant["nonce"]), **grant["user"]}
                self._json(200, {"access_token": secrets.token_urlsafe(24), "token_type": "Bearer",
                                 "expires_in": 300, "id_token": idp.sign(claims)})

        return Handler
