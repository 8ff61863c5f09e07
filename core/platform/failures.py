"""A failed job in words: a one-line reason anyone may read, and the traceback (workspace paths removed) that only
admins see.

The reason is what a person acts on ("dataset loans:4's certificate failed (dtype annual_income: text,
expected number)"): LeanOps' own errors already say it; anything else is named as an unexpected error of its
type. The traceback stays for whoever debugs, without the server's folders (the workspace, the code, the
virtual environment) so a shared screenshot or ticket does not map the server.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from pathlib import Path

from core.errors import LeanOpsError, redact

MAX_REASON = 500
_CODE_ROOT = Path(__file__).resolve().parents[2]


def reason_of(exc: BaseException) -> str:
    """One line, in words, of why a job stopped."""
    text = " ".join(str(exc).split())  # one line: newlines and runs of spaces become one space
    if isinstance(exc, LeanOpsError):
        line = text or type(exc).__name__
    else:
        name = type(exc).__name__
        line = f"{text} (unexpected {name}; the traceback is kept for admins)" if text else \
            f"unexpected {name} (the traceback is kept for admins)"
    line = redact(line)
    return line if len(line) <= MAX_REASON else line[:MAX_REASON - 1] + "…"


def clean_traceback(text: str, *, folders: Iterable[Path | str] = ()) -> str:
    """``text`` (a formatted traceback) with secrets redacted and these folders shown as placeholders: each of
    ``folders`` (the workspace), the code's root, and Python's installation prefixes."""
    places: list[tuple[str, str]] = [(str(Path(f)), "<workspace>") for f in folders if f]
    places += [(p, "<python>") for p in {sys.prefix, sys.base_prefix, sys.exec_prefix} if p]
    places.append((str(_CODE_ROOT), "<leanops>"))
    for folder, label in sorted(places, key=lambda p: -len(p[0])):  # the longest first: a venv inside the code
        text = text.replace(folder + "/", label + "/").replace(folder, label)
    text = re.sub(r"/(?:home|Users|root|tmp|var|srv|opt)/[^\s\"',:]+/", "<path>/", text)  # any other absolute folder
    return redact(text)
