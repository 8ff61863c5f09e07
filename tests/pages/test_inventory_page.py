"""The Inventory page (AppTest, SQLite and PostgreSQL): an overdue high-risk review shows in red words with a link
to the model; an approver records the review on the page and the row clears; a viewer gets no review form."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from core.actors import Actor, cli_actor
from core.platform.database import transaction
from core.promotion import moves, registration
from db.models import AliasMove, ModelReview, utcnow
from tests.support.training import *  # noqa: F403
from tests.support.training import add_dataset, small_churn


def overdue_model(factory, settings) -> None:
    """churn v1 champion for seven months under a high-risk policy, never reviewed."""
    add_dataset(factory, settings, small_churn())
    spec = {"dataset": "churn", "target": "churn", "model": "linear", "sensitive": "gender"}
    version = registration.train(factory, settings, spec, actor=Actor("sam", "scientist", "job"),
                                 log=lambda line: None)["model_version"]
    moves.promote(factory, settings, actor=cli_actor(), model="churn", version=version)
    text = settings.policies.text().replace("models:\n  churn:\n", "models:\n  churn:\n    risk_tier: high\n", 1)
    with transaction(factory) as s:
        settings.policies.save(s, actor=cli_actor(), text=text)
        s.execute(update(AliasMove).where(AliasMove.model == "churn").values(ts=utcnow() - timedelta(days=213)))


def test_overdue_review_is_red_links_to_the_model_and_clears_once_recorded(workspace, factory, open_page):
    overdue_model(factory, workspace)
    overview = open_page("app_pages/overview.py", role="approver")
    assert "Reviews due" in [h.value for h in overview.subheader]
    assert any("OVERDUE since" in m.value and "/inventory?model=churn" in m.value for m in overview.markdown)
    at = open_page("app_pages/inventory.py", role="approver")
    table = at.markdown[0].value
    assert "[churn](/registry?model=churn)" in table and ":red[**OVERDUE since" in table and "blocks promotion" in table

    notes = next(t for t in at.text_area if t.label == "Review notes")
    notes.input("holdout, live accuracy and drift looked at")
    next(b for b in at.button if b.label == "Record review").click()
    at.run()
    assert not at.exception
    table = at.markdown[0].value
    assert "OVERDUE" not in table and "continue by approver\\-user" in table and "| due 20" in table
    with factory() as s:
        assert s.query(ModelReview).one().reviewer == "approver-user"

    viewer = open_page("app_pages/inventory.py", role="viewer")
    assert not [b for b in viewer.button if b.label == "Record review"]
