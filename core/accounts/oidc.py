"""Single sign-on with an OpenID Connect provider (issue 15): the protocol steps and the account mapping.

The dashboard's routes (ui/oidc_routes.py) drive the authorization-code flow with PKCE: ``begin`` makes
the request to send the browser to, ``exchange_code`` trades the returned code at the token endpoint
(with the client secret), ``verify_id_token`` checks the ID token (RS256 signature against the
provider's JWKS, ``iss``, ``aud``/``azp``, ``exp``, ``iat``, ``nbf``, ``nonce``), ``check_allowed`` applies
the e-mail domain / group allow-list, and ``sign_in`` maps the identity to a LeanOps user.

Why not Streamlit's ``st.login``: it keeps the identity in its own signed cookie, configured through
``secrets.toml``, beside (not inside) the ``sessions`` table, so a logout, an admin's revocation or a
deactivation could not end it the way they end a LeanOps session. The token is verified with PyJWT, on an
allow-list of one algorithm (RS256), so the classic JWT mistakes (``alg: none``, an HMAC keyed with the
public key) cannot happen. The JWKS is read here with httpx rather than PyJWT's ``PyJWKClient``, which
follows redirects: the keys come only from the https ``jwks_uri`` the discovery document names.

Account mapping: a user is bound to the provider's ``(iss, sub)`` pair, never to an e-mail address
alone (an address can be reassigned). The binding is kept in the user's ``password_hash`` as
``sso:<sha256(iss, sub)>``, which is no argon2 hash, so such an account has no password and cannot sign in
with one. On first login the user is created with the verified e-mail as username and the least role
(``viewer``), or the highest role its groups map to; later logins keep whatever role an admin gave.
An account that already has that username (a local one, or another identity whose address makes the same
name: ``bob+x@`` and ``bob'x@`` both become ``bob_x@``) is never taken over: the new user gets the first free
``-2``, ``-3``, … suffix, and the sign-in is never refused for it.
A deactivated user is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import logging
import re
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import audit
from core.accounts import auth
from core.actors import ROLES, Actor
from core.errors import AuthError, InvalidInput
from db.models import User, utcnow

log = logging.getLogger("leanops.sso")

SSO_MARK = "sso:"  # the password_hash of an account bound to an identity provider (see the module docstring)
ACTOR = "system:sso"  # who creates a user on their first single sign-on
LEEWAY_SECONDS = 60  # clock difference tolerated between the provider and this machine
ALGORITHMS = ("RS256",)  # the ID token's signature algorithms accepted (OpenID Connect's default)
TIMEOUT_SECONDS = 10.0
_USERNAME_BAD = re.compile(r"[^A-Za-z0-9_.@-]")


# -- configuration -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Provider:
    """What the settings say about the provider (``LEANOPS_OIDC_*``)."""

    issuer: str
    client_id: str
    client_secret: str = field(repr=False)
    name: str = "SSO"
    allowed_domains: frozenset[str] = frozenset()  # lower-case; "*" allows any verified address
    allowed_groups: frozenset[str] = frozenset()
    groups_claim: str = "groups"
    role_map: tuple[tuple[str, str], ...] = ()  # (group, role)
    scopes: str = "openid email profile"


def parse_list(text: str) -> frozenset[str]:
    return frozenset(part.strip() for part in text.split(",") if part.strip())


def parse_role_map(text: str) -> tuple[tuple[str, str], ...]:
    """``"leanops-admins=admin, ml=scientist"`` → ((group, role), ...); a bad entry names itself."""
    pairs = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        group, sep, role = (s.strip() for s in part.partition("="))
        if not sep or not group or role not in ROLES:
            raise ValueError(f"entry {part!r} is not GROUP=ROLE with a role among: {', '.join(ROLES)}")
        pairs.append((group, role))
    return tuple(pairs)


def check_issuer(issuer: str) -> str:
    """An issuer is an https URL; plain http only on a loopback host (a local test provider)."""
    parts = urlsplit(issuer)
    if parts.scheme == "https" and parts.hostname:
        return issuer
    if parts.scheme == "http" and parts.hostname and _loopback(parts.hostname):
        return issuer
    raise ValueError(f"issuer {issuer!r} must be an https URL (plain http only on localhost/127.0.0.1)")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# -- discovery and keys --------------------------------------------------------------------------

@dataclass(frozen=True)
class Discovery:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str


def discover(issuer: str, *, timeout: float = TIMEOUT_SECONDS) -> Discovery:
    """Read ``<issuer>/.well-known/openid-configuration``; its ``issuer`` must be the configured one."""
    import httpx

    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    doc = _get_json(httpx, url, timeout, "discovery document")
    if doc.get("issuer") != issuer:
        raise AuthError(f"the provider's discovery document names issuer {doc.get('issuer')!r}, "
                        f"not the configured {issuer!r}; check LEANOPS_OIDC_ISSUER")
    try:
        found = Discovery(issuer, doc["authorization_endpoint"], doc["token_endpoint"], doc["jwks_uri"])
    except KeyError as exc:
        raise AuthError(f"the provider's discovery document at {url} has no {exc.args[0]!r}") from None
    for endpoint in (found.authorization_endpoint, found.token_endpoint, found.jwks_uri):
        try:
            check_issuer(endpoint)
        except ValueError:
            raise AuthError(f"the provider's endpoint {endpoint!r} is not https") from None
    return found


def fetch_jwks(jwks_uri: str, *, timeout: float = TIMEOUT_SECONDS) -> list[dict[str, Any]]:
    import httpx

    keys = _get_json(httpx, jwks_uri, timeout, "signing keys (JWKS)").get("keys")
    if not isinstance(keys, list):
        raise AuthError(f"the provider's JWKS at {jwks_uri} holds no 'keys' list")
    return [k for k in keys if isinstance(k, dict)]


def _get_json(httpx: Any, url: str, timeout: float, what: str) -> dict[str, Any]:
    try:
        response = httpx.get(url, timeout=timeout, follow_redirects=False)
        response.raise_for_status()
        doc = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise AuthError(f"could not read the single sign-on provider's {what} at {url}: {exc}") from None
    if not isinstance(doc, dict):
        raise AuthError(f"the provider's {what} at {url} is not a JSON object")
    return doc


# -- the authorization-code flow -----------------------------------------------------------------

@dataclass(frozen=True)
class Request:
    """One sign-in under way: the URL to send the browser to, and what the callback must find again."""

    url: str
    state: str
    nonce: str
    verifier: str


def begin(provider: Provider, discovery: Discovery, *, redirect_uri: str) -> Request:
    """The authorization request: a fresh ``state`` (CSRF), ``nonce`` (replay) and PKCE verifier (S256)."""
    state, nonce, verifier = (secrets.token_urlsafe(32) for _ in range(3))
    challenge = _b64(hashlib.sha256(verifier.encode()).digest())
    query = urlencode({"response_type": "code", "client_id": provider.client_id, "redirect_uri": redirect_uri,
                       "scope": provider.scopes, "state": state, "nonce": nonce, "code_challenge": challenge,
                       "code_challenge_method": "S256"})
    sep = "&" if "?" in discovery.authorization_endpoint else "?"
    return Request(f"{discovery.authorization_endpoint}{sep}{query}", state, nonce, verifier)


def exchange_code(provider: Provider, discovery: Discovery, *, code: str, redirect_uri: str, verifier: str,
                  timeout: float = TIMEOUT_SECONDS) -> str:
    """Trade the authorization code for tokens (client_secret_basic); returns the ID token."""
    import httpx

    try:
        response = httpx.post(discovery.token_endpoint, timeout=timeout, follow_redirects=False,
                              auth=(provider.client_id, provider.client_secret),
                              data={"grant_type": "authorization_code", "code": code,
                                    "redirect_uri": redirect_uri, "code_verifier": verifier})
    except httpx.HTTPError as exc:
        raise AuthError(f"could not reach the single sign-on provider's token endpoint: {exc}") from None
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code != 200 or not isinstance(body, dict):
        error = body.get("error", "") if isinstance(body, dict) else ""
        raise AuthError(f"the single sign-on provider refused the code ({response.status_code} {error}); "
                        "try signing in again") from None
    token = body.get("id_token")
    if not isinstance(token, str):
        raise AuthError("the single sign-on provider's answer holds no ID token (is 'openid' in the scopes?)")
    return token


# -- the ID token --------------------------------------------------------------------------------

def verify_id_token(token: str, *, keys: list[dict[str, Any]], issuer: str, client_id: str,
                    nonce: str) -> dict[str, Any]:
    """The ID token's claims once its RS256 signature and its claims hold; else AuthError saying which failed.

    PyJWT checks the signature (with the algorithm allow-list), ``iss``, ``aud``, ``exp``, ``iat`` and
    ``nbf`` (each with ``LEEWAY_SECONDS``) and refuses an RSA key under 2048 bits; ``azp``, ``nonce`` and
    ``sub`` are checked here, as OpenID Connect asks and PyJWT does not.

    Args:
        keys: the provider's JWKS ``keys`` (``fetch_jwks``, read at each sign-in, so a rotated key is
            found); the token's ``kid`` picks one (or the only RSA key when the token names none).
        nonce: the value sent with this browser's authorization request.
    """
    import jwt

    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise AuthError("the ID token is not a signed JWT (three base64url parts of JSON)") from None
    if header.get("alg") not in ALGORITHMS:
        raise AuthError(f"the ID token is signed with {header.get('alg')!r}; only {', '.join(ALGORITHMS)} "
                        "is accepted")
    key = _signing_key(keys, header.get("kid"))
    try:
        claims = jwt.decode(token, key, algorithms=list(ALGORITHMS), audience=client_id, issuer=issuer,
                            leeway=LEEWAY_SECONDS,
                            options={"require": ["exp"], "enforce_minimum_key_length": True})
    except jwt.InvalidSignatureError:
        raise AuthError("the ID token's signature does not verify with the provider's key") from None
    except jwt.ExpiredSignatureError:
        raise AuthError("the ID token has expired; sign in again") from None
    except jwt.ImmatureSignatureError:
        raise AuthError("the ID token is dated in the future; check this machine's clock") from None
    except (jwt.InvalidIssuerError, jwt.InvalidAudienceError, jwt.MissingRequiredClaimError) as exc:
        raise AuthError(_claim_refusal(token, exc, issuer=issuer, client_id=client_id)) from None
    except jwt.InvalidKeyError as exc:
        raise AuthError(f"the provider's key {header.get('kid')!r} is refused: {exc}") from None
    except jwt.InvalidTokenError as exc:
        raise AuthError(f"the ID token is malformed: {exc}") from None

    aud = claims["aud"]
    if isinstance(aud, list) and len(aud) > 1 and claims.get("azp") != client_id:
        raise AuthError("the ID token has several audiences and its 'azp' is not this dashboard's client id")
    if not isinstance(claims.get("nonce"), str) or not hmac.compare_digest(claims["nonce"], nonce):
        raise AuthError("the ID token's nonce is not the one this browser's sign-in sent (a replayed token?)")
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise AuthError("the ID token names no subject ('sub')")
    return claims


def _signing_key(keys: list[dict[str, Any]], kid: Any) -> Any:
    """The provider's key the token names (a ``jwt.PyJWK``); AuthError when it has none such."""
    import jwt

    rsa_keys = [k for k in keys if k.get("kty") == "RSA" and k.get("use", "sig") == "sig"]
    candidates = [k for k in rsa_keys if k.get("kid") == kid] if kid else rsa_keys[:1] if len(rsa_keys) == 1 else []
    if not candidates:
        raise AuthError(f"the ID token's signing key {kid!r} is not among the provider's keys")
    try:
        return jwt.PyJWK(candidates[0])
    except jwt.PyJWTError:
        raise AuthError(f"the provider's key {kid!r} is not a usable RSA key") from None


def _claim_refusal(token: str, exc: Exception, *, issuer: str, client_id: str) -> str:
    """Why PyJWT refused ``iss``/``aud``/a missing claim, naming what the token said (its signature held)."""
    import jwt

    claims = jwt.decode(token, options={"verify_signature": False})
    if isinstance(exc, jwt.MissingRequiredClaimError):
        if exc.claim == "exp":
            return "the ID token has no expiry ('exp'); sign in again"
        return f"the ID token has no {exc.claim!r} claim"
    if isinstance(exc, jwt.InvalidIssuerError):
        return f"the ID token was issued by {claims.get('iss')!r}, not by {issuer!r}"
    return f"the ID token is meant for {claims.get('aud')!r}, not for this dashboard's client id {client_id!r}"


def groups_of(claims: dict[str, Any], groups_claim: str) -> list[str]:
    value = claims.get(groups_claim) if groups_claim else None
    if isinstance(value, str):
        return [value]
    return [g for g in value if isinstance(g, str)] if isinstance(value, list) else []


def check_allowed(provider: Provider, claims: dict[str, Any]) -> str:
    """The verified e-mail address of an identity the settings let in; AuthError otherwise.

    Let in: an address in one of ``allowed_domains`` ("*": any), or a member of one of ``allowed_groups``.
    """
    email = claims.get("email")
    if not isinstance(email, str) or "@" not in email:
        raise AuthError("the provider sent no e-mail address (is 'email' in LEANOPS_OIDC_SCOPES?)")
    if claims.get("email_verified") is not True:
        raise AuthError(f"the provider has not verified the address {email}; LeanOps accepts verified addresses "
                        "only")
    email = email.strip().lower()
    domain = email.rsplit("@", 1)[1]
    if "*" in provider.allowed_domains or domain in provider.allowed_domains:
        return email
    groups = groups_of(claims, provider.groups_claim)
    if provider.allowed_groups.intersection(groups):
        return email
    allowed = [f"e-mail domains {', '.join(sorted(provider.allowed_domains))}" if provider.allowed_domains else "",
               f"groups {', '.join(sorted(provider.allowed_groups))}" if provider.allowed_groups else ""]
    raise AuthError(f"{email} may not sign in to this dashboard: allowed are "
                    f"{' or '.join(a for a in allowed if a)}; ask an admin")


def role_for(provider: Provider, groups: list[str]) -> str:
    """The role a new user gets: the highest one their groups map to, else the least role."""
    mapped = [role for group, role in provider.role_map if group in groups]
    return max(mapped, key=ROLES.index) if mapped else ROLES[0]


# -- the LeanOps account -------------------------------------------------------------------------

def binding(issuer: str, subject: str) -> str:
    """The stored form of an identity: ``sso:`` + sha256 of issuer and subject (fits the column, any length)."""
    return SSO_MARK + hashlib.sha256(f"{issuer}\n{subject}".encode()).hexdigest()


def is_sso_account(password_hash: str) -> bool:
    return password_hash.startswith(SSO_MARK)


@dataclass(frozen=True)
class SignIn:
    """The outcome of ``sign_in``: the actor, or why not (shown on the login page). ``created``: first login."""

    actor: Actor | None
    message: str
    created: bool = False


def sign_in(session: Session, *, provider: Provider, claims: dict[str, Any], email: str,
            now: Any = None) -> SignIn:
    """Map a verified, allowed identity to its LeanOps user, creating it on first login (the caller commits).

    Audited: ``user.created`` (by ``system:sso``) on first login, ``login.ok`` with ``via: sso``, and a
    refusal of a deactivated account as ``login.failed``; a taken username gets a suffix (``user.created`` names
    the ``wanted`` one).
    """
    now = now or utcnow()
    subject = claims["sub"]
    bound = binding(provider.issuer, subject)
    user = session.scalar(select(User).where(User.password_hash == bound))
    created = False
    if user is None:
        wanted = _username_for(email)
        username = _free_username(session, wanted)
        role = role_for(provider, groups_of(claims, provider.groups_claim))
        user = User(username=username, password_hash=bound, role=role, created_by=ACTOR)
        session.add(user)
        session.flush()
        created = True
        audit.record(session, ACTOR, "user.created", f"user:{username}",
                     {"role": role, "via": "sso", "issuer": provider.issuer, "subject": subject}
                     | ({"wanted": wanted} if username != wanted else {}))
    if not user.active:
        audit.record(session, user.username, "login.failed", f"user:{user.username}",
                     {"via": "sso", "reason": "deactivated"})
        return SignIn(None, f"Your LeanOps account {user.username} is deactivated, so {provider.name} cannot sign "
                            "you in. Ask an admin.")
    user.last_login_at = now
    audit.record(session, user.username, "login.ok", f"user:{user.username}", {"via": "sso"})
    return SignIn(auth.actor_for(user), "Welcome.", created)


def _username_for(email: str) -> str:
    """The e-mail address as a username (characters a username may not hold become ``_``; at most 64)."""
    name = _USERNAME_BAD.sub("_", email)[:64]
    if len(name) < 2:
        raise InvalidInput(f"cannot make a username from the address {email!r}")
    return name


def _free_username(session: Session, wanted: str) -> str:
    """``wanted``, or with the first free ``-2``, ``-3``, … suffix when an account has it: different addresses
    can make the same name (``bob+x@``, ``bob'x@`` and ``bob_x@`` all become ``bob_x@``), and an existing
    account (local or another identity) is never taken over; a sign-in is never refused for it."""
    taken = set(session.scalars(select(User.username).where(User.username.startswith(wanted[:56], autoescape=True))))
    if wanted not in taken:
        return wanted
    n = 2
    while (candidate := f"{wanted[:64 - len(str(n)) - 1]}-{n}") in taken:
        n += 1
    return candidate


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
