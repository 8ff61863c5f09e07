"""Text people typed is shown as text in Markdown elements: no image beacon, link, HTML or math.

``ui.components.plain`` (names, card fields), ``code`` (inline code spans) and ``message`` (whole
messages for st.error/info/…) are rendered with a CommonMark parser (markdown-it-py, installed with
Evidently): none may produce a link, an image or HTML, and ``plain`` and ``code`` must show exactly
what was typed. GFM autolink literals (``www.``, ``http://``, ``a@b.c``), which CommonMark does not
have, are checked on the escaped text.
"""

from __future__ import annotations

import html
import re

import pytest
from markdown_it import MarkdownIt

from ui.components import code, message, plain

MD = MarkdownIt("commonmark")
PAYLOADS = [
    "![x](http://attacker/beacon)",
    "[click](javascript:alert(1))",
    "see ![a](http://attacker/a.png 'title') and [b][ref]\n\n[ref]: http://attacker/ref",
    "<img src=http://attacker/i.png onerror=alert(1)>",
    "<http://attacker/auto> <a href='http://attacker'>x</a>",
    "www.attacker.com or mail a@attacker.com or https://attacker.example/x",
    "$\\href{http://attacker}{click}$ $$x$$",
    "\\[pre-escaped\\](http://attacker/) \\![y](http://attacker/y)",
    ":red[alert] :material/home: **bold** _it_ ~~s~~ # heading | a | b |",
    "`tick` ``double`` ```fence```",
    "&#91;entity&#93;(http://attacker/) &lt;img&gt;",
]
LINK_TOKENS = {"link_open", "image", "html_inline", "html_block", "autolink"}
AUTOLINK_LITERAL = re.compile(r"(?i)(?<!\\)(?:https?:|mailto:)//|(?<!\\)www\.|(?<!\\)@")


def tokens(markdown: str) -> set[str]:
    found = set()
    for token in MD.parse(markdown):
        found.add(token.type)
        found |= {child.type for child in token.children or []}
    return found


def shown(markdown: str) -> str:
    """The text a reader sees (tags dropped, entities decoded), whitespace collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", MD.render(markdown))).split())


@pytest.mark.parametrize("typed", PAYLOADS)
def test_plain_text_is_shown_exactly_as_typed_and_never_as_markup(typed: str) -> None:
    for markdown in (plain(typed), f"*Intended use:* {plain(typed)}", f"**{plain(typed)}**"):
        assert not tokens(markdown) & LINK_TOKENS, markdown
        assert not AUTOLINK_LITERAL.search(markdown), markdown
    assert shown(plain(typed)) == " ".join(typed.split())


@pytest.mark.parametrize("typed", PAYLOADS)
def test_a_code_span_cannot_be_closed_by_what_it_shows(typed: str) -> None:
    markdown = f"**Dataset** {code(typed)} · target {code('x')}"
    found = tokens(markdown)
    assert not found & LINK_TOKENS and "code_inline" in found, markdown
    spans = [c.content for t in MD.parse(markdown) for c in t.children or [] if c.type == "code_inline"]
    assert spans[0].strip() == " ".join(typed.splitlines()).strip() and spans[1] == "x"


@pytest.mark.parametrize("typed", PAYLOADS)
def test_a_message_keeps_its_words_but_loses_links_images_and_html(typed: str) -> None:
    markdown = message(f"column {typed!r} not in dataset churn:3; columns are: age, plan.")
    assert not tokens(markdown) & LINK_TOKENS, markdown
    assert not AUTOLINK_LITERAL.search(markdown), markdown
    assert message("the query failed on source 'wh': no such table: nope") == (
        "the query failed on source 'wh': no such table: nope")  # ordinary messages read as before


@pytest.mark.parametrize("typed", PAYLOADS)
def test_the_login_page_shows_an_oidc_error_description_as_text(typed: str) -> None:
    """Issue 27 item 6: the OIDC callback's ``error_description`` reaches the login page through the message
    cookie (``ui.oidc_routes``); what the page renders of it is a message without link, image or HTML."""
    from ui import auth_routes
    from ui.session import login_notices

    refused = f"Example SSO did not sign you in (access_denied: {typed[:200]})."
    cookie = auth_routes.decode_message(auth_routes.encode_message(refused))
    notices = login_notices(f"You were signed out ({typed})", cookie)
    assert [kind for kind, _ in notices] == ["info", "error"]
    for _, markdown in notices:
        assert not tokens(markdown) & LINK_TOKENS, markdown
        assert not AUTOLINK_LITERAL.search(markdown), markdown
