"""Registry page with ``rollback.auto: approve``: the automatic rollback's request is listed as a rollback
(not a promotion) among the pending requests, and an approver's click on Approve rolls the champion back."""

from __future__ import annotations

from datetime import timedelta

from core import policy
from core.actors import Actor
from core.promotion import moves
from core.retraining import auto_rollback
from db.models import utcnow
from tests.support import aliases
from tests.support.performance import log_predictions
from tests.support.training import *  # noqa: F403
from tests.support.training import add_dataset, small_churn
from tests.support.versions import recorded

ANN = Actor("ann", "approver")


def test_a_rollback_request_is_shown_and_approving_it_rolls_back(open_page, factory, workspace):
    (workspace.home / policy.POLICY_FILE).write_text(
        policy.DEFAULT_POLICY_YAML + "  m:\n    rollback:\n      auto: approve\n")
    data = add_dataset(factory, workspace, small_churn())
    for f1 in (0.90, 0.95):
        recorded(factory, workspace, data, model="m", metrics={"f1": f1})
    for version in (1, 2):
        moves.promote(factory, workspace, actor=ANN, model="m", version=version)
    log_predictions(factory, version=1, outputs=[1] * 60, labels=[1] * 60, start=utcnow() - timedelta(days=2))
    log_predictions(factory, version=2, outputs=[1] * 60, labels=[0] * 60, start=utcnow() - timedelta(hours=2))
    asked = auto_rollback.check_rollback(factory, workspace, "m")
    assert asked.request_id is not None

    at = open_page("app_pages/registry.py", role="approver")
    next(s for s in at.selectbox if s.label == "Model").select("m").run()
    assert "Pending requests" in [h.value for h in at.subheader]
    table = next(d.value for d in at.dataframe if "asks to" in d.value.columns)
    assert list(table["asks to"]) == ["roll back from v2"] and list(table["requested by"]) == ["system:auto-rollback"]
    assert aliases.get(workspace, model="m", alias="champion") == 2
    next(b for b in at.button if b.label == "Approve").click().run()
    assert aliases.get(workspace, model="m", alias="champion") == 2, "Approve asks first"
    next(b for b in at.button if b.label == "Yes, approve").click().run()
    assert not at.exception and not at.error
    assert aliases.get(workspace, model="m", alias="champion") == 1
