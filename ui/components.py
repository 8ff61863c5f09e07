"""Small building blocks shared by pages."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TypeVar

import streamlit as st
from sqlalchemy.orm import Session

from core.errors import LeanOpsError
from core.platform.database import transaction
from ui import resources

if TYPE_CHECKING:
    from streamlit.delta_generator import DeltaGenerator

T = TypeVar("T")
# Verdicts are words in a coloured badge, never an emoji alone: without an emoji font (a common Linux
# desktop, a locked-down browser, CI's Chromium) ✅ and ❌ both show as the same empty box.
STATUS_ICON = {"queued": ":material/schedule:", "running": ":material/directions_run:",
               "succeeded": ":material/check_circle:", "failed": ":material/cancel:", "cancelled": ":material/block:"}
BADGE = {  # word → (colour, Material icon)
    "passed": ("green", ":material/check_circle:"), "failed": ("red", ":material/cancel:"),
    "succeeded": ("green", ":material/check_circle:"), "queued": ("gray", ":material/schedule:"),
    "running": ("blue", ":material/directions_run:"), "cancelled": ("gray", ":material/block:"),
    "not evaluated": ("gray", ":material/help:"), "no drift": ("green", ":material/check_circle:"),
    "drift": ("red", ":material/warning:"), "warning": ("orange", ":material/warning:"),
    "not checked": ("gray", ":material/help:"), "sent": ("green", ":material/check_circle:"),
}


def verdict(passed: bool | None) -> str:
    """A pass/fail as the word a table shows (and sorts by): passed, failed or not evaluated."""
    return "not evaluated" if passed is None else ("passed" if passed else "failed")


def badge(word: str, *, text: str | None = None, color: str | None = None) -> str:
    """Markdown for a coloured badge with an icon and ``text`` (default: the word), for any Markdown element."""
    colour, icon = BADGE.get(word, ("gray", ""))
    label = f"{icon} {text if text is not None else word}".strip().replace("]", "\\]")
    return f":{color or colour}-badge[{label}]"


def verdict_column(label: str) -> st.column_config.TextColumn:
    """A table column of verdict words (it sorts as text); the header says what was judged."""
    return st.column_config.TextColumn(label, help="passed, failed or not evaluated", width="small")

# Most Streamlit text elements render Markdown (st.markdown, caption, info/error/…, toast, table cells,
# metric labels and help, progress text, expander labels). Text that people typed elsewhere (model
# cards, column and file names, usernames, reasons, job errors) must not become an image beacon
# (![x](http://attacker/…)), a link, HTML or math there. CommonMark lets every ASCII punctuation
# character be escaped with a backslash, which then shows as itself.
_PUNCTUATION = re.compile(r"""([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~])""")
# What a whole message (an error naming a column, a file, a URL) needs escaped so that no link, image,
# HTML, directive or math can start: brackets, angle and curly brackets, $, @ and backslashes, plus
# the "://" and "www." of autolinks. Other punctuation stays readable (and searchable) as typed.
_MARKUP = re.compile(r"""([\[\]<>{}$@\\]|(?<=:)//|(?<=www)\.)""", re.IGNORECASE)


def plain(value: object) -> str:
    """``value`` as literal text inside Markdown: every punctuation character escaped (names, typed text)."""
    return _PUNCTUATION.sub(r"\\\1", str(value))


def code(value: object) -> str:
    """``value`` as an inline code span that it cannot close (a fence longer than its own backtick runs)."""
    text = " ".join(str(value).splitlines())  # a blank line would end the span's paragraph
    fence = "`" * (max((len(run) for run in re.findall("`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def message(text: object) -> str:
    """A whole message for st.error/info/success/warning/toast: shown as written, but no link, image or HTML."""
    return _MARKUP.sub(lambda m: "\\" + m.group(0) if m.group(0) != "//" else "\\/\\/", str(text))


def act(fn: Callable[[Session], T], *, success: str | None = None) -> T | None:
    """Run one write in its own transaction; show a LeanOpsError as st.error and return None.

    The session is checked again first (``ui.session.recheck``): a click in a tab whose session ended
    (revoked, logged out elsewhere, deactivated) writes nothing and shows the login page."""
    from ui import session as ui_session

    ui_session.recheck(touch=True)
    try:
        with transaction(resources.session_factory()) as session:
            result = fn(session)
    except LeanOpsError as exc:
        st.error(message(exc))
        return None
    st.cache_data.clear()
    if success:
        st.toast(message(success), icon=":material/check_circle:")
    return result


def ago(ts: datetime | None) -> str:
    if ts is None:
        return "—"
    seconds = (datetime.now(UTC) - ts).total_seconds()
    if seconds < 0:
        return f"in {_span(-seconds)}"
    return f"{_span(seconds)} ago"


def _span(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


def job_row(job, who, *, label: str, key: str) -> None:  # a JobView and an Actor
    """One live queue line: progress with its stage, and Cancel for those who may (inside a fragment): a user
    their own jobs, an admin any."""
    from core.platform import job_queue

    left, right = st.columns([5, 1])
    left.progress(job.progress,
                  text=f"{STATUS_ICON[job.status]} {job.status} · {label} · by {plain(job.created_by)} "
                       f"{ago(job.created_at)}")
    if job.cancel_requested:
        right.caption("stopping…")
    elif (who.at_least("admin") or job.created_by == who.name) and right.button("Cancel", key=f"{key}-{job.id}"):
        act(lambda s: job_queue.cancel(s, actor=who, job_id=job.id), success=f"Job {job.id}: cancel requested")
        st.rerun(scope="fragment")


# -- code in a code font -------------------------------------------------------------------------
# st.text_area has no font option (Streamlit 1.67), and st.code cannot be edited. Every keyed widget
# carries the CSS class st-key-<key>, so one style rule gives that one text area the theme's code font.

def code_area(label: str, value: str, *, key: str, height: int = 320, help: str | None = None) -> str:
    """A text area for YAML/JSON in the code font (monospace, no wrapping), for text meant to line up."""
    safe = re.sub(r"[^A-Za-z0-9_-]", "-", key)  # the CSS class Streamlit derives from the key
    st.html(f"<style>.st-key-{safe} textarea {{font-family: 'Source Code Pro', ui-monospace, SFMono-Regular, "
            "Menlo, Consolas, monospace; font-size: 0.85rem; white-space: pre; overflow-wrap: normal; "
            "overflow-x: auto; tab-size: 2}</style>")
    return st.text_area(label, value, height=height, key=key, help=help) or ""


# -- forms that keep what was typed ---------------------------------------------------------------
# A form built with clear_on_submit=True empties itself on every submit, so one validation error wipes
# every field and the retry fails for another reason. Forms keep their input instead, and a successful
# submit starts a new "generation" of the form: fresh widget keys, hence empty widgets, on the next run.

def form_key(name: str) -> str:
    """The key of form ``name`` in its current generation (pass it to st.form and use it in widget keys)."""
    return f"{name}-{st.session_state.get(f'_form-gen-{name}', 0)}"


def reset_form(name: str, *, notice: str | None = None) -> None:
    """Empty form ``name`` by starting its next generation and rerun; ``notice`` is shown once above it."""
    st.session_state[f"_form-gen-{name}"] = st.session_state.get(f"_form-gen-{name}", 0) + 1
    if notice:
        st.session_state[f"_form-notice-{name}"] = notice
    st.rerun()


def form_notice(name: str) -> None:
    """Show the success notice ``reset_form`` left for form ``name`` (once)."""
    if notice := st.session_state.pop(f"_form-notice-{name}", None):
        st.success(message(notice), icon=":material/check_circle:")


def dataset_version(where: DeltaGenerator, label: str, dataset: str | None, *, key: str, prefix: str = "v",
                    help: str | None = None) -> int | None:
    """A dataset's version picker that starts on the trusted default (the newest version whose certificate passed
    and that is not deprecated: never a failed upload), marked "(default)"; None when there is no version."""
    from ui import training_queries

    numbers = training_queries.dataset_versions(dataset) if dataset else []
    trusted = training_queries.default_dataset_version(dataset) if dataset else None
    return where.selectbox(label, numbers, key=key,
                           index=numbers.index(trusted) if trusted in numbers else 0,
                           format_func=lambda n: f"{prefix}{n} (default)" if n == trusted else f"{prefix}{n}",
                           help=help)
