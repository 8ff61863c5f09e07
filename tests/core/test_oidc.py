"""Single sign-on (issue 15 item 2): the ID token's checks, the allow-list and the account mapping, against the
local OpenID Connect provider stand-in (tests/support/oidc.py), which speaks the real protocol."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from core.accounts import auth, oidc
from core.errors import AuthError, InvalidInput
from core.platform.database import transaction
from core.settings import get_settings
from db.models import AuditEvent, User
from tests.support.factories import admin_actor, make_user
from tests.support.oidc import OidcProvider, b64, other_key

NONCE = "nonce-abc"
REDIRECT = "http://127.0.0.1:9/auth/oidc/callback"


@pytest.fixture
def idp() -> Iterator[OidcProvider]:
    with OidcProvider(client_id="leanops", client_secret="idp-secret-value") as provider:
        provider.user = {"sub": "ada-1", "email": "Ada@Example.com", "email_verified": True, "groups": ["staff"]}
        yield provider


def config(idp: OidcProvider, **overrides: object) -> oidc.Provider:
    values: dict = {"issuer": idp.issuer, "client_id": "leanops", "client_secret": "idp-secret-value",
                    "name": "Test IdP", "allowed_domains": frozenset({"example.com"})}
    values.update(overrides)
    return oidc.Provider(**values)


def verify(idp: OidcProvider, token: str, **kw: object) -> dict:
    args: dict = {"keys": idp.jwks()["keys"], "issuer": idp.issuer, "client_id": "leanops", "nonce": NONCE}
    args.update(kw)
    return oidc.verify_id_token(token, **args)


def test_the_full_code_flow_against_the_provider_yields_verified_claims(idp):
    provider = config(idp)
    discovery = oidc.discover(idp.issuer)
    request = oidc.begin(provider, discovery, redirect_uri=REDIRECT)
    query = parse_qs(urlsplit(request.url).query)
    assert query["code_challenge_method"] == ["S256"] and query["nonce"] == [request.nonce]
    assert "idp-secret-value" not in request.url  # the secret goes only to the token endpoint
    answer = httpx.get(request.url, follow_redirects=False)  # the provider signs the user in at once
    back = parse_qs(urlsplit(answer.headers["location"]).query)
    assert back["state"] == [request.state]
    token = oidc.exchange_code(provider, discovery, code=back["code"][0], redirect_uri=REDIRECT,
                               verifier=request.verifier)
    claims = oidc.verify_id_token(token, keys=oidc.fetch_jwks(discovery.jwks_uri), issuer=idp.issuer,
                                  client_id="leanops", nonce=request.nonce)
    assert claims["sub"] == "ada-1" and oidc.check_allowed(provider, claims) == "ada@example.com"
    with pytest.raises(AuthError, match="refused the code"):  # a code works once
        oidc.exchange_code(provider, discovery, code=back["code"][0], redirect_uri=REDIRECT,
                           verifier=request.verifier)


def test_a_wrong_pkce_verifier_or_client_secret_is_refused_by_the_token_endpoint(idp):
    discovery = oidc.discover(idp.issuer)
    for provider, verifier in ((config(idp), "not-the-verifier"), (config(idp, client_secret="wrong"), None)):
        request = oidc.begin(provider, discovery, redirect_uri=REDIRECT)
        code = parse_qs(urlsplit(httpx.get(request.url).headers["location"]).query)["code"][0]
        with pytest.raises(AuthError, match="refused the code") as caught:
            oidc.exchange_code(provider, discovery, code=code, redirect_uri=REDIRECT,
                               verifier=verifier or request.verifier)
        assert "wrong" not in str(caught.value)


def test_discovery_must_name_the_configured_issuer(idp):
    with pytest.raises(AuthError, match="names issuer"):
        oidc.discover(idp.issuer + "/")  # the document says the issuer without the slash


def _alg_none(idp: OidcProvider) -> str:
    head = b64(json.dumps({"alg": "none", "kid": idp.kid}).encode())
    return f"{head}.{b64(json.dumps(idp.claims(nonce=NONCE)).encode())}."


def _tampered(idp: OidcProvider) -> str:
    head, _, sig = idp.sign(idp.claims(nonce=NONCE)).split(".")
    return ".".join([head, b64(json.dumps(idp.claims(nonce=NONCE, sub="admin")).encode()), sig])


def _hs256_with_public_key(idp: OidcProvider) -> str:
    import hashlib
    import hmac

    head = b64(json.dumps({"alg": "HS256", "kid": idp.kid}).encode())
    body = b64(json.dumps(idp.claims(nonce=NONCE)).encode())
    secret = json.dumps(idp.jwks()["keys"][0]).encode()
    return f"{head}.{body}.{b64(hmac.new(secret, f'{head}.{body}'.encode(), hashlib.sha256).digest())}"


@pytest.mark.parametrize(("make", "message"), [
    (lambda idp: idp.sign(idp.claims(nonce=NONCE), key=other_key()), "signature does not verify"),
    (_tampered, "signature does not verify"),
    (_alg_none, "only RS256"),
    (_hs256_with_public_key, "only RS256"),
    (lambda idp: idp.sign(idp.claims(nonce=NONCE), header={"alg": "RS256", "kid": "other"}), "signing key 'other'"),
    (lambda idp: idp.sign(idp.claims(nonce=NONCE, aud="another-app")), "meant for 'another-app'"),
    (lambda idp: idp.sign(idp.claims(nonce=NONCE, aud=["leanops", "x"])), "azp"),
    (lambda idp: idp.sign(idp.claims(nonce=NONCE, iss="https://evil.example")), "issued by 'https://evil.example'"),
    (lambda idp: idp.sign(idp.claims(nonce=NONCE, exp=int(time.time()) - 120)), "expired"),
    (lambda idp: idp.sign(idp.claims(nonce=NONCE, iat=int(time.time()) + 3600)), "in the future"),
    (lambda idp: idp.sign(idp.claims(nonce=NONCE, nbf=int(time.time()) + 3600)), "in the future"),
    (lambda idp: idp.sign({k: v for k, v in idp.claims(nonce=NONCE).items() if k != "exp"}), "no expiry"),
    (lambda idp: idp.sign(idp.claims(nonce=NONCE, exp="tomorrow")), "malformed.*exp"),
    (lambda idp: idp.sign(idp.claims(nonce="someone-elses")), "nonce"),
    (lambda idp: "not.a-jwt", "not a signed JWT"),
])
def test_an_id_token_failing_any_check_is_refused_with_the_reason(idp, make, message):
    with pytest.raises(AuthError, match=message):
        verify(idp, make(idp))


def test_a_good_id_token_passes(idp):
    assert verify(idp, idp.sign(idp.claims(nonce=NONCE)))["email"] == "Ada@Example.com"


def test_a_token_within_the_leeway_passes_and_the_kid_picks_the_key_after_a_rotation(idp):
    now = int(time.time())
    assert verify(idp, idp.sign(idp.claims(nonce=NONCE, exp=now - 30, iat=now + 30)))["sub"] == "ada-1"
    old = idp.jwks()["keys"][0]
    idp.key, idp.kid = other_key(), "test-key-2"  # the provider rotates its key and still lists the old one
    keys = [old, *idp.jwks()["keys"]]
    assert verify(idp, idp.sign(idp.claims(nonce=NONCE)), keys=keys)["sub"] == "ada-1"
    with pytest.raises(AuthError, match="signing key 'test-key-2'"):  # keys read before the rotation
        verify(idp, idp.sign(idp.claims(nonce=NONCE)), keys=[old])


def test_an_rsa_key_under_2048_bits_is_refused(idp):
    from cryptography.hazmat.primitives.asymmetric import rsa

    idp.key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(AuthError, match="key 'test-key-1' is refused"):
        verify(idp, idp.sign(idp.claims(nonce=NONCE)))


@pytest.mark.parametrize(("claims", "provider_kw", "message"), [
    ({"email": "eve@elsewhere.org"}, {}, "eve@elsewhere.org may not sign in.*e-mail domains example.com"),
    ({"email_verified": False}, {}, "not verified"),
    ({"email": None}, {}, "no e-mail address"),
    ({"groups": ["staff"]}, {"allowed_domains": frozenset(), "allowed_groups": frozenset({"ml"})}, "groups ml"),
])
def test_an_identity_outside_the_allow_list_is_refused(idp, claims, provider_kw, message):
    with pytest.raises(AuthError, match=message):
        oidc.check_allowed(config(idp, **provider_kw), {**idp.claims(nonce=NONCE), **claims})


def test_groups_or_a_wildcard_domain_let_in(idp):
    eve = {**idp.claims(nonce=NONCE), "email": "eve@elsewhere.org", "groups": ["ml"]}
    assert oidc.check_allowed(config(idp, allowed_groups=frozenset({"ml"})), eve) == "eve@elsewhere.org"
    assert oidc.check_allowed(config(idp, allowed_domains=frozenset({"*"})), eve) == "eve@elsewhere.org"


# -- the LeanOps account -------------------------------------------------------------------------

def sign_in(factory: sessionmaker[Session], provider: oidc.Provider, claims: dict) -> oidc.SignIn:
    with transaction(factory) as s:
        return oidc.sign_in(s, provider=provider, claims=claims, email=oidc.check_allowed(provider, claims))


def test_first_sso_login_creates_a_viewer_bound_to_the_subject_and_later_logins_keep_its_role(factory, idp):
    provider, claims = config(idp), idp.claims(nonce=NONCE)
    first = sign_in(factory, provider, claims)
    assert first.created and first.actor is not None
    assert (first.actor.name, first.actor.role) == ("ada@example.com", "viewer")
    with transaction(factory) as s:
        auth.set_role(s, actor=admin_actor(), username="ada@example.com", role="approver")
    again = sign_in(factory, provider, {**claims, "email": "ada.lovelace@example.com"})  # the address changed
    assert not again.created and again.actor is not None
    assert (again.actor.name, again.actor.role) == ("ada@example.com", "approver")  # same account, role kept
    with factory() as s:
        user = s.scalars(select(User).where(User.username == "ada@example.com")).one()
        assert oidc.is_sso_account(user.password_hash) and user.created_by == oidc.ACTOR
        events = [(e.action, e.details.get("via")) for e in s.scalars(select(AuditEvent).order_by(AuditEvent.seq))]
    assert ("user.created", "sso") in events and events.count(("login.ok", "sso")) == 2


def test_an_sso_account_has_no_password(factory, idp):
    sign_in(factory, config(idp), idp.claims(nonce=NONCE))
    for guess in ("", "sso:", oidc.binding(idp.issuer, "ada-1")):
        with transaction(factory) as s:
            result = auth.login(s, username="ada@example.com", password=guess, max_failures=5, lockout_seconds=60)
        assert result.actor is None


def test_a_groups_claim_maps_to_the_highest_mapped_role(factory, idp):
    provider = config(idp, role_map=oidc.parse_role_map("staff=scientist, leanops-admins=approver"))
    claims = {**idp.claims(nonce=NONCE), "groups": ["staff", "leanops-admins", "other"]}
    assert sign_in(factory, provider, claims).actor.role == "approver"  # type: ignore[union-attr]
    assert oidc.role_for(provider, ["nothing"]) == "viewer"


def test_a_deactivated_user_is_refused_and_the_refusal_audited(factory, idp):
    provider, claims = config(idp), idp.claims(nonce=NONCE)
    sign_in(factory, provider, claims)
    with transaction(factory) as s:
        auth.set_active(s, actor=admin_actor(), username="ada@example.com", active=False)
    refused = sign_in(factory, provider, claims)
    assert refused.actor is None and "deactivated" in refused.message
    with factory() as s:
        last = s.scalars(select(AuditEvent).order_by(AuditEvent.seq.desc())).first()
    assert last is not None and (last.action, last.details["reason"]) == ("login.failed", "deactivated")


def test_a_local_account_with_the_same_name_is_never_taken_over(factory, idp):
    make_user(factory, "ada@example.com", "admin")
    signed = sign_in(factory, config(idp), idp.claims(nonce=NONCE))
    assert signed.actor is not None and signed.actor.name == "ada@example.com-2" and signed.actor.role == "viewer"
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(User).where(User.username == "ada@example.com")) == 1
        assert not oidc.is_sso_account(s.scalars(select(User.password_hash)
                                                  .where(User.username == "ada@example.com")).one())
    again = sign_in(factory, config(idp), idp.claims(nonce=NONCE))  # the binding, not the name, finds it
    assert again.actor is not None and again.actor.name == "ada@example.com-2"


def test_addresses_that_make_the_same_username_get_suffixes_never_a_refusal(factory, idp):
    """``bob+x@``, ``bob'x@`` and ``bob_x@`` all become ``bob_x@example.com`` (issue 27 item 6)."""
    provider = config(idp)
    names = []
    for i, email in enumerate(["bob+x@example.com", "bob'x@example.com", "bob_x@example.com"]):
        claims = idp.claims(nonce=NONCE, sub=f"subject-{i}", email=email, email_verified=True)
        signed = sign_in(factory, provider, claims)
        assert signed.actor is not None, signed.message
        names.append(signed.actor.name)
    assert names == ["bob_x@example.com", "bob_x@example.com-2", "bob_x@example.com-3"]


def test_another_issuer_with_the_same_subject_is_another_identity(factory, idp):
    sign_in(factory, config(idp), idp.claims(nonce=NONCE))
    other = config(idp, issuer="https://other-idp.example")
    second = sign_in(factory, other, {**idp.claims(nonce=NONCE), "iss": other.issuer})
    assert second.actor is not None and second.actor.name == "ada@example.com-2" and second.created


# -- settings ------------------------------------------------------------------------------------

def test_sso_settings_are_checked_and_the_secret_never_shown(monkeypatch):
    assert get_settings().oidc_provider() is None  # off by default
    monkeypatch.setenv("LEANOPS_OIDC_ISSUER", "https://idp.example.com")
    monkeypatch.setenv("LEANOPS_OIDC_CLIENT_ID", "leanops")
    monkeypatch.setenv("LEANOPS_OIDC_CLIENT_SECRET", "very-secret-value")
    with pytest.raises(InvalidInput, match="ALLOWED_DOMAINS nor LEANOPS_OIDC_ALLOWED_GROUPS") as caught:
        get_settings()  # nobody may sign in: refused rather than letting everyone in
    assert "very-secret-value" not in str(caught.value)
    monkeypatch.setenv("LEANOPS_OIDC_ALLOWED_DOMAINS", "Example.com")
    monkeypatch.setenv("LEANOPS_OIDC_ROLE_MAP", "ml=scientist")
    provider = get_settings().oidc_provider()
    assert provider is not None and provider.allowed_domains == {"example.com"}
    assert "very-secret-value" not in repr(provider) + repr(get_settings())
    for name, value, message in (("LEANOPS_OIDC_ISSUER", "http://idp.example.com", "https"),
                                 ("LEANOPS_OIDC_ROLE_MAP", "ml=boss", "ml=boss")):
        monkeypatch.setenv(name, value)
        with pytest.raises(InvalidInput, match=message):
            get_settings()
        monkeypatch.undo()

