"""Registry page on real trained versions: blocked promotion, one-click promotion, rollback, approvals."""

from __future__ import annotations

import pytest

from core import policy
from core.actors import Actor
from core.errors import InvalidInput
from core.platform.database import transaction
from core.promotion import approvals
from core.promotion.registration import train
from tests.support import aliases
from tests.support.training import *  # noqa: F403
from tests.support.training import add_dataset, small_churn


@pytest.fixture
def trained(factory, workspace):
    """v1 logistic regression (passes the F1 gate), v2 dummy (fails it), v3 logistic on other data."""
    add_dataset(factory, workspace, small_churn(1500))
    for model in ("logistic_regression", "dummy", "logistic_regression"):
        train(factory, workspace, {"dataset": "churn", "target": "churn", "model": model, "sensitive": "gender",
                                     "seed": 3 if model == "dummy" else 1},
                actor=Actor("sam", "scientist", "job"))
    return workspace


CONFIRM = {"Promote to production": "Yes, promote", "Roll back": "Yes, roll back", "Approve": "Yes, approve"}


def click(at, label):
    """Click ``label``; a move (promote, roll back, approve) asks first, and the test says yes."""
    next(b for b in at.button if b.label == label).click().run()
    if label in CONFIRM:
        assert not at.exception, at.exception
        assert at.warning and "?" in at.warning[-1].value, "a move asks for confirmation before it acts"
        next(b for b in at.button if b.label == CONFIRM[label]).click().run()
    return at


def champion(settings):
    return aliases.get(settings, model="churn", alias="champion")


def test_blocked_then_promoted_then_rolled_back(open_page, trained):
    at = open_page("app_pages/registry.py", role="approver")
    version_box = next(s for s in at.selectbox if s.label == "Version")
    version_box.select(2).run()
    click(at, "Promote to production")
    assert "cannot be promoted" in at.error[0].value and "metric f1" in at.error[0].value
    import re  # the refusal names the value as people read it: "metric f1: 0.412", never 16 digits
    assert re.search(r"metric f1: 0\.\d{1,3} \(needs ", at.error[0].value), at.error[0].value
    assert champion(trained) is None

    next(s for s in at.selectbox if s.label == "Version").select(1).run()
    click(at, "Promote to production")
    assert not at.exception
    assert champion(trained) == 1
    assert "v1 is now the champion" in at.success[0].value

    with pytest.raises(StopIteration):  # scientists see no promote button: core would refuse anyway
        click(open_page("app_pages/registry.py", role="scientist"), "Promote to production")


def test_approval_required_trainer_cannot_approve_second_user_can(open_page, trained, factory):
    (trained.home / "policies.yaml").write_text(policy.DEFAULT_POLICY_YAML.replace(
        "required: false\n    approvers: 1", "required: true\n    approvers: 1"))
    scientist = open_page("app_pages/registry.py", role="scientist")
    next(s for s in scientist.selectbox if s.label == "Version").select(1).run()
    click(scientist, "Request promotion")
    assert "requested" in scientist.success[0].value

    with factory() as s:
        request_id = approvals.pending_requests(s, model="churn")[0].id
    with pytest.raises(InvalidInput, match="sam trained churn v1 and cannot approve it"):
        approvals.decide(factory, trained, actor=Actor("sam", "approver"), request_id=request_id, approve=True)

    approver = open_page("app_pages/registry.py", role="approver")
    approver.text_input(key="approval-comment").input("checked the fairness numbers").run()
    click(approver, "Approve")
    assert not approver.exception
    assert champion(trained) == 1
    with transaction(factory) as s:
        assert not approvals.pending_requests(s, model="churn")


BEACON = "![x](http://attacker/beacon)"
CLICK = "[click](javascript:alert(document.cookie))"


def test_a_model_card_is_shown_as_text_never_as_an_image_or_a_link(open_page, trained, factory):
    from markdown_it import MarkdownIt

    from core.registry import cards

    with transaction(factory) as s:
        cards.save(s, actor=Actor("sam", "scientist"), model="churn", version=1,
                   intended_use=f"Churn scoring {BEACON}", limitations=f"{CLICK} <img src=http://attacker/i>",
                   owner="www.attacker.com")
    at = open_page("app_pages/registry.py", role="viewer")  # viewers read the card as Markdown
    next(s for s in at.selectbox if s.label == "Version").select(1).run()
    assert not at.exception, at.exception
    card = {m.value.split(":*", 1)[0].lstrip("*"): m.value for m in at.markdown if m.value.startswith("*")}
    assert card["Intended use"] == r"*Intended use:* Churn scoring \!\[x\]\(http\:\/\/attacker\/beacon\)"
    assert r"\[click\]\(javascript\:alert\(document\.cookie\)\)" in card["Limitations"]
    assert card["Owner"] == r"*Owner:* www\.attacker\.com"
    md = MarkdownIt("commonmark")
    for element in [*at.markdown, *at.caption]:
        kinds = {c.type for t in md.parse(element.value) for c in [t, *(t.children or [])]}
        assert not kinds & {"image", "link_open", "html_inline", "html_block"}, element.value
    assert "attacker/beacon" in md.render(card["Intended use"])  # the text is all there, as text


def test_the_reason_box_keeps_its_text_when_refused_and_empties_after_a_promotion(open_page, trained):
    at = open_page("app_pages/registry.py", role="approver")
    next(s for s in at.selectbox if s.label == "Version").select(2).run()
    at.text_input(key="move-reason").input("ship the dummy")
    click(at, "Promote to production")
    assert "cannot be promoted" in at.error[0].value
    assert at.text_input(key="move-reason").value == "ship the dummy"  # refused: nothing typed is lost

    next(s for s in at.selectbox if s.label == "Version").select(1).run()
    at.text_input(key="move-reason").input("best f1 on churn v1")
    click(at, "Promote to production")
    assert champion(trained) == 1
    assert at.text_input(key="move-reason").value == "", "a done move's reason is not offered for the next one"


def test_gate_values_and_charts_read_at_a_glance(open_page, trained):
    """Issue 19 items 5-6: a gate value reads 0.812 (not 16 digits), versions sit on a categorical axis with
    their values written on the points, and a promotion made a second ago is not a chart of milliseconds."""
    import json
    import re
    from datetime import datetime, timedelta

    at = open_page("app_pages/registry.py", role="approver")
    next(s for s in at.selectbox if s.label == "Version").select(1).run()
    click(at, "Promote to production")
    assert champion(trained) == 1
    gates = next(d.value for d in at.dataframe if "observed" in d.value.columns)
    assert re.fullmatch(r"0\.\d{1,3}", gates.set_index("check").loc["metric f1", "observed"])

    figures = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    timeline = next(f for f in figures if f["data"][0].get("type") == "bar")  # px.timeline draws bars
    start, end = (datetime.fromisoformat(str(x).replace(" ", "T")) for x in timeline["layout"]["xaxis"]["range"])
    assert end - start >= timedelta(hours=1)
    across = next(f for f in figures if f["layout"].get("xaxis", {}).get("type") == "category")
    assert across["data"][0]["x"] == ["v1", "v2", "v3"]
    assert all(re.fullmatch(r"\d\.\d{1,3}|0", t) for t in across["data"][0]["text"]), across["data"][0]["text"]
    low, high = across["layout"]["yaxis"]["range"]
    assert 0 <= low and high <= 1.05
