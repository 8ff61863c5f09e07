"""Overview page: the first thing a lead sees is one row per model, every state in words (issue 19).

A champion whose gates fail must not hide behind a green headline: its row says "failed" and
"needs attention", and the "Production" headline counts it.
"""

from __future__ import annotations

from core.actors import Actor
from core.promotion import moves
from tests.support import versions
from tests.support.training import add_dataset, small_churn


def test_a_champion_with_failing_gates_is_named_in_words_and_counted(open_page, factory, settings) -> None:
    add_dataset(factory, settings, small_churn(2000))
    admin = Actor("ada", "admin")
    good = versions.trained(factory, settings, model_name="good", **versions.STRONGER)
    moves.promote(factory, settings, actor=admin, model="good", version=good, reason="passes every gate")
    bad = versions.trained(factory, settings, model_name="bad", **versions.FAILING)  # the dummy: below the f1 gate
    moves.promote(factory, settings, actor=admin, model="bad", version=bad, reason="hotfix", force=True)

    at = open_page("app_pages/overview.py", role="viewer")
    assert not at.exception
    assert any(s.value == "Production" for s in at.subheader)
    headline = " ".join(m.value for m in at.markdown)
    assert "1 of 2 model(s) need attention: bad" in headline, headline
    assert "All 2 model(s) OK" not in headline

    table = next(df.value for df in at.dataframe if "gates" in df.value.columns)
    rows = {row["model"]: row for row in table.to_dict("records")}
    assert set(rows) == {"good", "bad"}
    assert (rows["bad"]["champion"], rows["bad"]["gates"], rows["bad"]["status"]) == (
        f"v{bad}", "failed", "needs attention")
    assert (rows["good"]["champion"], rows["good"]["gates"], rows["good"]["status"]) == (
        f"v{good}", "passed", "OK")
    for row in rows.values():  # every state is a word a user would use, never an emoji or a bare flag
        assert row["drift"] == "not checked" and row["why"] == "no drift check yet"
        assert row["performance"] == "not enough labels"
        assert "labels needed for a live f1" in row["metric"]
        assert row["last trained"] is not None
    assert rows["bad"]["alerts (24 h)"] >= 1  # the forced promotion raised a warning
    assert rows["good"]["alerts (24 h)"] == 0  # a normal promotion is information, not an alert to act on


def test_no_model_yet_says_what_to_do(open_page) -> None:
    at = open_page("app_pages/overview.py", role="viewer")
    assert not at.exception
    assert any("No model yet" in i.value for i in at.info)
