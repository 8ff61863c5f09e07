"""Every live panel re-checks the session on each run (issue 27 item 2): a fragment rerun does not run its page
script, so a function decorated with ``st.fragment`` must begin with ``session.recheck()`` (``ui/session.py``),
and every write through ``ui.components.act`` checks it first too (the browser test:
``tests/e2e/test_revoked_tab_browser.py``)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _fragments() -> list[tuple[str, ast.FunctionDef]]:
    found = []
    for path in sorted([*(ROOT / "app_pages").glob("*.py"), *(ROOT / "ui").glob("*.py"), ROOT / "app.py"]):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and any("fragment" in ast.unparse(d) for d in node.decorator_list):
                found.append((f"{path.relative_to(ROOT)}:{node.lineno} {node.name}", node))
    return found


def _rechecks(statement: ast.stmt) -> bool:
    return "session.recheck(" in ast.unparse(statement)


def test_every_live_panel_rechecks_the_session_first() -> None:
    fragments = _fragments()
    assert len(fragments) >= 5, fragments  # jobs, training, drift and overview's two panels at least
    missing = [where for where, fn in fragments if not _rechecks(fn.body[0])]
    assert not missing, f"live panels that act on a session nobody re-checked: {missing}"


def test_every_write_rechecks_the_session() -> None:
    act = next(n for n in ast.walk(ast.parse((ROOT / "ui" / "components.py").read_text()))
               if isinstance(n, ast.FunctionDef) and n.name == "act")
    assert any("recheck(" in ast.unparse(s) for s in act.body[:3])
