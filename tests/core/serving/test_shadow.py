"""Shadow scoring (issue 18): the scorer never delays or alters the champion's answer, skips and counts
under overload; the paired comparison and the policy's decision, checked against hand computations."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import numpy as np
import pytest
from scipy.stats import binomtest, wilcoxon

from core import policy
from core.monitoring import shadow_comparison
from core.serving.batching import Batcher
from core.serving.cache import ModelCache
from core.serving.inference import Predictor
from core.serving.shadow_scoring import ShadowScorer
from tests.support import mlflow_models
from tests.support.mlflow_models import records

NOW = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def served() -> SimpleNamespace:
    """A registered model: lr champion, rf20 challenger (plain MLflow aliases: a cache without LeanOps' DB)."""
    store = mlflow_models.store()
    name = store.fresh_name("shadow")
    lr, rf = store.register("lr", name), store.register("rf20", name)
    store.move(name, lr, "champion")
    store.move(name, rf, "challenger")
    return SimpleNamespace(store=store, name=name, lr=lr, rf=rf)


def predictor(cache: ModelCache, scorer: ShadowScorer | None) -> Predictor:
    return Predictor(cache=cache, batcher=Batcher(max_batch=64, window=0.0, threads=1), writer=None,
                     batch_limit=10_000, log_wait=5.0, shadow=scorer)


def test_shadow_never_alters_the_answer_and_scores_off_the_response_path(served: SimpleNamespace) -> None:
    cache = ModelCache(registry=served.store.registry, reload_seconds=3600)
    scored: list[int] = []
    scorer = ShadowScorer(cache=cache, writer=None, policies=None, rates={served.name: 1.0},
                          on_scored=lambda model, rows: scored.append(rows))
    rows = records(50)

    async def answers(p: Predictor) -> list:
        return [(await p.predict(name=served.name, body={"records": [r]})).predictions for r in rows]

    plain = asyncio.run(answers(predictor(cache, None)))
    # the worker is not running: every shadow item waits in the queue, and the answers come all the same
    shadowed = asyncio.run(answers(predictor(cache, scorer)))
    assert shadowed == plain
    assert scorer.depth == 50 and scored == []
    assert cache.peek(served.name, "challenger") is None  # nothing of the challenger on the request path
    scorer.start()
    try:
        assert scorer.drain(30)
    finally:
        scorer.stop()
    assert sum(scored) == 50 and cache.peek(served.name, "challenger").version == served.rf


def test_under_overload_shadow_work_is_skipped_and_counted_never_waited_for(served: SimpleNamespace) -> None:
    cache = ModelCache(registry=served.store.registry, reload_seconds=3600)
    skipped: list[tuple[str, str]] = []
    scorer = ShadowScorer(cache=cache, writer=None, policies=None, capacity=10, rates={served.name: 1.0},
                          on_skipped=lambda model, reason: skipped.append((model, reason)))
    columns = {"x": np.arange(4)}
    took = []
    results = []
    for i in range(5):
        started = time.perf_counter()
        results.append(scorer.offer(model=served.name, champion_version=served.lr, request_id=f"r{i}", ts=NOW,
                                    columns=columns, rows=4, requested_by=None))
        took.append(time.perf_counter() - started)
    assert results == [True, True, False, False, False]  # 8 rows queued; 12 would pass the capacity of 10
    assert skipped == [(served.name, "queue_full")] * 3
    assert max(took) < 0.005
    # models the policy does not shadow, and a sample of 0, are never queued nor counted
    assert not scorer.offer(model="other", champion_version=1, request_id="x", ts=NOW, columns=columns, rows=1,
                            requested_by=None)
    assert len(skipped) == 3


def test_sample_share_of_requests_is_shadowed(served: SimpleNamespace) -> None:
    cache = ModelCache(registry=served.store.registry, reload_seconds=3600)
    scorer = ShadowScorer(cache=cache, writer=None, policies=None, capacity=10**9, rates={served.name: 0.25})
    taken = sum(scorer.offer(model=served.name, champion_version=1, request_id=str(i), ts=NOW,
                             columns={"x": np.arange(1)}, rows=1, requested_by=None) for i in range(4000))
    assert 800 < taken < 1200


def test_policy_keys_and_their_defaults() -> None:
    rules = policy.parse(policy.DEFAULT_POLICY_YAML).default.shadow
    assert (rules.enabled, rules.sample, rules.min_labelled, rules.p_value, rules.decide) == (
        False, 1.0, 200, 0.05, "alert")
    with pytest.raises(Exception, match="shadow.sample"):
        policy.parse("default:\n  shadow: {sample: 1.5}\n")
    with pytest.raises(Exception, match="shadow.decide"):
        policy.parse("default:\n  shadow: {decide: yes-please}\n")


def _rules(**shadow_keys: object) -> policy.ModelPolicy:
    return policy.ModelPolicy.model_validate({"shadow": {"enabled": True, **shadow_keys},
                                              "improvement": {"min_relative": 0.02}})


@pytest.mark.parametrize(("task", "labelled", "champion", "challenger", "p", "age", "expected"), [
    ("classification", 150, 0.80, 0.95, 0.001, 1.0, "wait"),  # too few labels, too early
    ("classification", 150, 0.80, 0.95, 0.001, 15.0, "promote"),  # max_days reached
    ("classification", 200, 0.80, 0.95, 0.001, 1.0, "promote"),
    ("classification", 200, 0.80, 0.81, 0.001, 1.0, "discard"),  # better by less than 2 %
    ("classification", 200, 0.80, 0.95, 0.2, 1.0, "discard"),  # not significant
    ("classification", 200, 0.90, 0.80, 0.001, 1.0, "discard"),  # worse
    ("regression", 300, 10.0, 8.0, 0.01, 1.0, "promote"),  # mae: lower is better
    ("regression", 300, 10.0, 9.9, 0.01, 1.0, "discard"),
    ("regression", 0, None, None, None, 20.0, "discard"),  # no labels in max_days
])
def test_the_decision_table(task: str, labelled: int, champion: float | None, challenger: float | None,
                            p: float | None, age: float, expected: str) -> None:
    decision, reasons = shadow_comparison.decide(task=task, labelled=labelled, champion_score=champion,
                                                 challenger_score=challenger, p_value=p, age_days=age, rules=_rules())
    assert decision == expected and reasons


def test_regression_comparison_matches_a_hand_computation() -> None:
    rng = np.random.default_rng(3)
    truth = rng.normal(100, 10, 60)
    champ = truth + rng.normal(0, 5, 60)
    chall = truth + rng.normal(0, 2, 60)
    rows = [(NOW + timedelta(hours=i), f"r{i}", float(chall[i]), 1.0, float(champ[i]), 3.0,
             float(truth[i]) if i < 50 else None) for i in range(60)]
    got = shadow_comparison.summarise(rows, model="m", task="regression", champion=1, challenger=2,
                                      since=NOW - timedelta(days=1), now=NOW + timedelta(days=3),
                                      rules=_rules(min_labelled=40))
    e1, e2 = np.abs(champ[:50] - truth[:50]), np.abs(chall[:50] - truth[:50])
    assert (got.compared, got.labelled, got.metric) == (60, 50, "mae")
    assert got.champion_score == pytest.approx(e1.mean(), abs=1e-4)
    assert got.challenger_score == pytest.approx(e2.mean(), abs=1e-4)
    assert got.p_value == pytest.approx(wilcoxon(e1, e2).pvalue, rel=1e-4)
    close = np.abs(champ - chall) <= 0.05 * np.maximum(np.abs(champ), np.abs(chall))
    assert got.agreement == pytest.approx(close.mean(), abs=1e-4)
    assert got.decision == "promote" and (got.champion_latency_ms, got.challenger_latency_ms) == (3.0, 1.0)
    assert [d["compared"] for d in got.days] == [24, 24, 12]


def test_mcnemar_is_the_exact_binomial_on_discordant_pairs() -> None:
    champion = [True] * 30 + [False] * 12 + [True] * 3 + [False] * 5
    challenger = [True] * 30 + [True] * 12 + [False] * 3 + [False] * 5
    assert shadow_comparison.mcnemar(champion, challenger) == pytest.approx(binomtest(12, 15, 0.5).pvalue)
    assert shadow_comparison.mcnemar([True, False], [True, False]) == 1.0
    assert shadow_comparison.same(1, "1") and shadow_comparison.same(1.0, 1) and not shadow_comparison.same("yes", "no")


def test_under_load_the_shadow_yields_to_live_traffic_and_counts_busy(served: SimpleNamespace) -> None:
    """The challenger scores only while no champion request is in flight: under continuous load its queue
    fills and further requests are skipped as "busy" (before the fix it scored whenever its queue had room,
    slowing the champion by a third); once the load stops, what waited is scored."""
    cache = ModelCache(registry=served.store.registry, reload_seconds=3600)
    skipped: list[str] = []
    scored: list[int] = []
    scorer = ShadowScorer(cache=cache, writer=None, policies=None, rates={served.name: 1.0}, capacity=30,
                          on_skipped=lambda model, reason: skipped.append(reason),
                          on_scored=lambda model, rows: scored.append(rows))
    p = predictor(cache, scorer)
    assert p.in_flight == 0 and scorer.busy() == 0
    rows = records(40)
    offered = 0

    async def client(deadline: float) -> None:
        nonlocal offered
        i = 0
        while time.monotonic() < deadline:
            await p.predict(name=served.name, body={"records": [rows[i % len(rows)]]})
            offered += 1
            i += 1

    async def load(seconds: float) -> None:
        deadline = time.monotonic() + seconds
        await asyncio.gather(*[client(deadline) for _ in range(8)])

    cache.get(served.name, "challenger")  # loaded up front: the test is about when it scores, not loading
    scorer.start()
    try:
        asyncio.run(load(1.5))
        assert p.in_flight == 0 and offered > 60
        assert skipped and set(skipped) == {"busy"}
        assert sum(scored) <= 30 + 8, (sum(scored), offered)  # the load left it (almost) no idle moment
        assert scorer.drain(10)  # idle now: what waited in the queue is scored
        assert sum(scored) + len(skipped) == offered
        before = sum(scored)
        asyncio.run(p.predict(name=served.name, body={"records": rows[:3]}))
        assert scorer.drain(10)
        assert sum(scored) == before + 3
    finally:
        scorer.stop()
