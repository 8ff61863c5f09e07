"""Named errors. Messages say what came in and what was allowed — and never a credential.

Every message of a LeanOps error passes through ``redact``: a URL's password (``postgresql://user:pw@…``,
``s3://key:secret@…``), a ``password=…`` pair (a ``?password=`` query parameter too) and the path of a
webhook URL that is itself a credential (``https://hooks.slack.com/services/***``) are shown as ``***``,
so a store's location can be named in a message, a log line, a job error, an alert or an audit row
without handing out its password.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote, unquote, urlsplit

HIDDEN = "***"
# scheme://user:password@host — the password runs to the last '@' of the word (an unescaped '@' in a
# password hides more than needed rather than less). The user may be empty (redis://:pw@host).
_URL_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s/?#@:'\"<>]*):(?P<secret>[^\s'\"<>]*)@")
# libpq/ODBC style key=value pairs and URL query parameters: password=…, pwd=…, ?sslpassword=…, &token=…
_KEY_PASSWORD = re.compile(r"(?i)\b(?P<key>password|passwd|pwd|sslpassword|secret|client_secret|token|access_token"
                           r"|api_key|apikey)(?P<eq>\s*=\s*)(?:'[^']*'|\"[^\"]*\"|[^\s&;,)]+)")
# URLs that are themselves a credential (incoming webhooks): everything after the host's fixed prefix is the secret
_WEBHOOK_URL = re.compile(r"(?i)(?P<head>\bhttps?://(?:hooks\.slack\.com/(?:services|workflows|triggers)"
                          r"|(?:[\w-]+\.)*discord(?:app)?\.com/api/webhooks|[\w.-]*\.webhook\.office\.com"
                          r"|outlook\.office\.com/webhook))/[^\s'\"<>]+")


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with every URL password, ``password=…`` (or ``token=``, ``secret=``…) pair, the secret part of
    a webhook URL (Slack, Discord, Teams) and each of ``secrets`` shown as ``***``."""
    for secret in secrets:
        if secret and len(secret) >= 3:
            for form in {secret, quote(secret, safe=""), unquote(secret)}:
                text = text.replace(form, HIDDEN)
    if "://" in text:
        text = _URL_PASSWORD.sub(rf"\g<head>:{HIDDEN}@", text)
        text = _WEBHOOK_URL.sub(rf"\g<head>/{HIDDEN}", text)
    if "=" in text:
        text = _KEY_PASSWORD.sub(rf"\g<key>\g<eq>{HIDDEN}", text)
    return text


def safe_url(url: str) -> str:
    """``url`` as it may be shown: its password (if any) as ``***`` (like sqlalchemy's ``hide_password``)."""
    return redact(url)


def url_password(url: str) -> str | None:
    """The password inside ``url`` (unquoted), or None: to pass to ``redact`` as a known secret."""
    try:
        return urlsplit(url).password if "://" in url else None
    except ValueError:
        return None


class LeanOpsError(Exception):
    """Base of every error LeanOps raises on purpose; its message is shown to the user.

    The message's text is redacted (see ``redact``) when the error is made.

    ``after_rollback`` holds writes that must survive the failed transaction (e.g. the audit
    record of a refused attempt): ``core.platform.database.transaction`` runs each in a fresh transaction
    once the failed one has rolled back, so they never wait on its locks.
    """

    def __init__(self, *args: object) -> None:
        super().__init__(*(redact(arg) if isinstance(arg, str) else arg for arg in args))
        self.after_rollback: list = []


class NotFound(LeanOpsError):
    """Something named does not exist."""


class InvalidInput(LeanOpsError):
    """Input is malformed or out of range."""


class PermissionDenied(LeanOpsError):
    """The actor's role does not allow the operation."""


class AuthError(LeanOpsError):
    """Login or token failed."""


class PolicyBlocked(LeanOpsError):
    """A gate or check said no."""


class IntegrityError(LeanOpsError):
    """Stored data failed an integrity check."""


class Conflict(LeanOpsError):
    """The state changed under the request: it lost a race (say, its version became the champion meanwhile).

    Not bad input (the same request was fine a moment earlier): the CLI exits 1, the API answers 409.
    """


class StoreUnavailable(LeanOpsError):
    """A database or store is locked, down or unreachable."""
