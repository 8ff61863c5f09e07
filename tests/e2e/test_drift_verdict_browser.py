"""Issue 16 (1) in a real browser: the Drift page never shows a drifted column under a "stable" verdict
without saying why it does not count.

A model trained by LeanOps on the churn data is the champion; a batch in which only two columns the model
does not lean on (region, gender) moved is checked through core. The page must say "stable", name both
drifted columns, and give the reason each does not make the data count as drifted.
"""

from __future__ import annotations

import numpy as np
import pytest
from playwright.sync_api import Page, expect

from core.actors import Actor
from core.monitoring import checks
from core.promotion.registration import train
from core.settings import Settings
from db.session import make_engine, make_session_factory
from tests.e2e.helpers import ADMIN, goto_page, login
from tests.support import aliases
from tests.support.paths import ARTIFACTS
from tests.support.training import SCIENTIST, add_dataset, small_churn


@pytest.mark.parametrize("dashboard", [{"LEANOPS_SCHEDULER": "off"}], indirect=True)
def test_drifted_columns_under_a_stable_verdict_say_why_they_do_not_count(dashboard, page: Page):
    settings = Settings(home=dashboard.home)
    engine = make_engine(settings.db_url)
    factory = make_session_factory(engine)
    add_dataset(factory, settings, small_churn(1500))
    version = train(factory, settings, {"dataset": "churn", "target": "churn", "model": "linear"},
                    actor=Actor("sam", "scientist", "job"), log=lambda line: None)["model_version"]
    aliases.move(settings, model="churn", alias="champion", version=version)
    batch = small_churn(3000, seed=5).drop(columns="churn")
    rng = np.random.default_rng(5)
    batch["region"] = rng.choice(["north", "south", "east", "west"], len(batch), p=[0.85, 0.05, 0.05, 0.05])
    batch["gender"] = rng.choice(["female", "male"], len(batch), p=[0.9, 0.1])
    check = checks.run_check(factory, settings, actor=SCIENTIST, model="churn", version=version, source="upload",
                             current=batch, filename="quiet.csv", report=False)
    engine.dispose()
    assert set(check.drifted) == {"region", "gender"} and not check.drift_detected, check.verdict
    reasons = check.verdict["not_counted"]
    assert reasons

    login(page, dashboard.url, *ADMIN)
    goto_page(page, "Drift")
    verdict = page.get_by_test_id("stMetric").filter(has_text="Verdict")
    expect(verdict.get_by_test_id("stMetricValue")).to_have_text("stable")
    box = page.get_by_test_id("stAlert").filter(has_text="Stable, although 2 column(s) drifted")
    expect(box).to_be_visible()
    for text in ("region", "gender", "They do not make the data count as drifted because", *reasons):
        expect(box).to_contain_text(text)
    expect(page.get_by_test_id("stAlert").filter(has_text="It counts because")).to_have_count(0)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "drift-stable-although.png"))
