"""The champion/challenger shadow comparison, and the policy's decision on it.

The challenger scored the champion's own live records (``core.serving.shadow_scoring``: prediction-log rows with
``alias="shadow"`` and the champion request's id), so the two are compared record by record: how often
they agree, how fast each was, and, on the records that got feedback labels, each one's realised metric
with a *paired* test. Paired, because both saw the same records: McNemar (exact, on the records exactly
one of them got right) for classification, Wilcoxon signed-rank on the absolute errors for regression.
A split-traffic A/B test at a lean team's volume never reaches significance; pairing needs far fewer.

Before labels arrive, each version's label-free estimate of the same metric (CBPE for classifiers, DLE
for regressors: ``core.training.estimation``) on the same records is shown beside them: a sample of the
champion's logged records of the last day, predicted by both versions (``estimates``). The paired labels
decide; the estimates decide only when ``shadow.max_days`` passes without ``shadow.min_labelled`` labels
and the policy's ``performance.use_estimate`` is on, and then only when their bands do not overlap.

The decision (``decide``) is a pure function of the numbers and the model's ``shadow`` policy; ``run``
applies it once per challenger version as ``system:shadow``: promotion through the same gates and
approvals as a manual one, or the challenger alias cleared (the version stays registered); audited with
the numbers, and alerted.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import defaultdict
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from core import audit, policy
from core.accounts.auth import require
from core.actors import Actor, system_actor
from core.alerts import notify
from core.errors import NotFound, StoreUnavailable
from core.platform.prediction_log import reads
from core.registry import state
from core.registry.state import CHALLENGER, CHAMPION
from core.settings import Settings
from db.models import utcnow

log = logging.getLogger("leanops.shadow")
ACTOR = system_actor("shadow")
DECIDED = "model.shadow_decision"
METRIC = {"classification": "accuracy", "regression": "mae"}  # what the paired tests test
MAX_PAIRS = 200_000  # the newest paired records read for one comparison
ESTIMATE_ROWS = 5_000  # records of the champion's recent traffic both versions are estimated on
ESTIMATE_HOURS = 24.0  # ... taken from this many hours (since the challenger was set, if later)
ESTIMATE_SECONDS = 600.0  # a process recomputes a pair's estimates at most this often (it loads both versions)
_estimated: dict[tuple[str, str, int, int], tuple[float, tuple[dict[str, float] | None, dict[str, float] | None]]] = {}
_estimating = threading.Lock()
SHARED_SECONDS = 60.0  # a page or API read reuses a comparison this long (one window)
SHARED_WAIT_SECONDS = 120.0  # how long a first read waits for the comparison it started


@dataclass(frozen=True)
class Comparison:
    """The champion/challenger comparison of one model (the keys of ``cli.py shadow`` come first)."""

    champion: int | None
    challenger: int | None
    compared: int  # records both scored
    labelled: int  # ... of which have a feedback label
    agreement: float | None  # share of compared records with the same output (regression: within 5 %)
    metric: str | None  # accuracy (classification) or mae (regression)
    champion_score: float | None
    challenger_score: float | None
    p_value: float | None  # McNemar (exact) or Wilcoxon signed-rank, on the labelled records
    decision: str  # none | wait | promote | discard
    model: str = ""
    task: str | None = None
    reasons: tuple[str, ...] = ()
    champion_latency_ms: float | None = None  # median per request: the champion's answer, end to end
    challenger_latency_ms: float | None = None  # ... the challenger's model time for it, in shadow batches
    champion_estimate: dict[str, float] | None = None  # label-free {value, lower, upper} of ``metric`` (``estimates``)
    challenger_estimate: dict[str, float] | None = None
    since: str | None = None  # when the challenger was set
    days: list[dict[str, Any]] = field(default_factory=list)  # per day: compared, agreement, both scores

    def as_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["reasons"] = list(self.reasons)
        return doc


# -- pure parts ----------------------------------------------------------------------------------

def same(a: Any, b: Any) -> bool:
    """Whether two labels are the same class: 1, 1.0 and "1" are (feedback arrives as JSON)."""
    if a is None or b is None:
        return a is b
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return str(a) == str(b)


def close(a: Any, b: Any) -> bool:
    """Two regression outputs agree when within 5 % of the larger (or 1e-9 of each other)."""
    try:
        x, y = float(a), float(b)
    except (TypeError, ValueError):
        return False
    return abs(x - y) <= max(0.05 * max(abs(x), abs(y)), 1e-9)


def mcnemar(champion_right: list[bool], challenger_right: list[bool]) -> float:
    """Two-sided exact McNemar p-value: a binomial test on the records exactly one model got right."""
    from scipy.stats import binomtest

    b = sum(1 for c, h in zip(champion_right, challenger_right, strict=True) if c and not h)
    c = sum(1 for ch, h in zip(champion_right, challenger_right, strict=True) if h and not ch)
    return 1.0 if b + c == 0 else float(binomtest(c, b + c, 0.5).pvalue)


def wilcoxon(champion_errors: list[float], challenger_errors: list[float]) -> float:
    """Two-sided Wilcoxon signed-rank p-value on paired absolute errors (1.0 when they never differ)."""
    from scipy.stats import wilcoxon as signed_rank

    a, b = np.abs(np.asarray(champion_errors, float)), np.abs(np.asarray(challenger_errors, float))
    if not np.any(a - b):
        return 1.0
    return float(signed_rank(a, b).pvalue)


def decide(*, task: str, labelled: int, champion_score: float | None, challenger_score: float | None,
           p_value: float | None, age_days: float, rules: policy.ModelPolicy,
           champion_estimate: dict[str, float] | None = None, challenger_estimate: dict[str, float] | None = None
           ) -> tuple[str, tuple[str, ...]]:
    """``wait``, ``promote`` or ``discard``, with the reasons, from the paired numbers and the policy.

    Decided after ``shadow.min_labelled`` paired labels or ``shadow.max_days``: promote when the
    challenger beats the champion by ``improvement.min_relative`` with p < ``shadow.p_value``, else discard.
    At ``shadow.max_days`` with fewer labels and ``performance.use_estimate`` on, the label-free estimates
    decide instead: promote when the challenger's beats the champion's by ``improvement.min_relative`` and
    the two bands do not overlap, else discard.
    """
    shadow, step = rules.shadow, rules.improvement.min_relative
    if labelled < shadow.min_labelled and age_days < shadow.max_days:
        return "wait", (f"{labelled} paired label(s) of {shadow.min_labelled} (shadow.min_labelled), "
                        f"{age_days:.1f} of {shadow.max_days:g} day(s) (shadow.max_days)",)
    if labelled < shadow.min_labelled and rules.performance.use_estimate and champion_estimate and challenger_estimate:
        return _decide_on_estimates(task, champion_estimate, challenger_estimate, step, labelled=labelled,
                                    age_days=age_days)
    if champion_score is None or challenger_score is None or p_value is None:
        return "discard", (f"no paired labels after {age_days:.1f} day(s): nothing shows the challenger is better",)
    metric = METRIC[task]
    if task == "classification":
        need = champion_score * (1 + step)
        better = challenger_score >= need and challenger_score > champion_score
        verb = f"{metric} {challenger_score:.4f} vs champion {champion_score:.4f} (needs >= {need:.4f})"
    else:  # mae: lower is better
        need = champion_score * (1 - step)
        better = challenger_score <= need and challenger_score < champion_score
        verb = f"{metric} {challenger_score:.4g} vs champion {champion_score:.4g} (needs <= {need:.4g})"
    significant = p_value < shadow.p_value
    sig = f"p = {p_value:.4g} ({'<' if significant else '>='} shadow.p_value {shadow.p_value:g})"
    if better and significant:
        return "promote", (f"challenger better by improvement.min_relative {step:g}: {verb}", sig)
    why = "not better by improvement.min_relative" if not better else "better, but not significantly"
    return "discard", (f"challenger {why}: {verb}", sig)


def _decide_on_estimates(task: str, champion: dict[str, float], challenger: dict[str, float], step: float, *,
                         labelled: int, age_days: float) -> tuple[str, tuple[str, ...]]:
    metric = METRIC[task]
    above, below = challenger["lower"] > champion["upper"], challenger["upper"] < champion["lower"]
    if task == "classification":
        need = champion["value"] * (1 + step)
        better = challenger["value"] >= need and challenger["value"] > champion["value"] and above
        op = ">="
    else:  # mae: lower is better
        need = champion["value"] * (1 - step)
        better = challenger["value"] <= need and challenger["value"] < champion["value"] and below
        op = "<="
    band = "{value:.4g} [{lower:.4g}, {upper:.4g}]"
    said = (f"only {labelled} paired label(s) after {age_days:.1f} day(s): decided on the label-free estimates "
            "(performance.use_estimate)",
            f"estimated {metric} {band.format(**challenger)} vs champion {band.format(**champion)} "
            f"(needs {op} {need:.4g}); the bands {'do not overlap' if above or below else 'overlap'}")
    if better:
        return "promote", said
    return "discard", said


# -- reading -------------------------------------------------------------------------------------

def estimates(session: Session, settings: Settings, *, model: str, champion: int, challenger: int, task: str,
              since: datetime | None, now: datetime) -> tuple[dict[str, float] | None, dict[str, float] | None]:
    """Each version's label-free estimate of ``METRIC[task]`` (``{value, lower, upper}``) on the same
    records: at most ``ESTIMATE_ROWS`` of the champion's records logged in the last hour, or in the last
    ``ESTIMATE_HOURS`` when that hour holds fewer (since the challenger was set, if later), predicted by
    both versions through the vetted loader. None for a version without a stored estimator, or that cannot
    predict them (logged). A process computes a pair at most every ``ESTIMATE_SECONDS``, one pair at a
    time: it loads both versions, seconds (and memory) that a page or an API read, however many arrive
    together, should not pay each time."""
    key = (settings.mlflow_uri, model, champion, challenger)  # a version number is a version of one registry
    with _estimating:  # one computation at a time: parallel reads wait for it, then find it cached
        cached = _estimated.get(key)
        if cached is not None and time.monotonic() - cached[0] < ESTIMATE_SECONDS:
            return cached[1]
        pair = _estimate_pair(session, settings, model=model, champion=champion, challenger=challenger,
                              task=task, since=since, now=now)
        _estimated[key] = (time.monotonic(), pair)
        return pair


def _estimate_pair(session: Session, settings: Settings, *, model: str, champion: int, challenger: int, task: str,
                   since: datetime | None, now: datetime
                   ) -> tuple[dict[str, float] | None, dict[str, float] | None]:
    from core.monitoring import model_outputs
    from core.training import runs

    for hours in (1.0, ESTIMATE_HOURS):  # the last hour when it alone holds enough: a busy day is not read whole
        start = now - timedelta(hours=hours)
        logged = reads.window(session, settings.data_store, model=model,
                              since=max(start, since) if since is not None else start,
                              until=now + timedelta(seconds=1), meta=("version",))
        logged = logged[logged["version"] == champion].drop(columns="version")
        if len(logged) >= ESTIMATE_ROWS:
            break
    frame = model_outputs.sample(logged, ESTIMATE_ROWS)
    found: list[dict[str, float] | None] = []
    for version in (champion, challenger):
        value = None
        try:
            reference = runs.reference_for(session, model=model, version=version)
            if len(frame) and reference.get("estimator"):
                outputs = model_outputs.predict(settings, model=model, version=version, frame=frame,
                                                reference=reference)
                value = model_outputs.estimate(reference, outputs).get(METRIC[task])
        except Exception as exc:  # noqa: BLE001 - an estimate is advice: the comparison stands without it
            log.warning("%s v%s not estimated for the shadow comparison: %s: %s", model, version,
                        type(exc).__name__, exc)
        found.append({k: round(float(value[k]), 4) for k in ("value", "lower", "upper")} if value else None)
    return found[0], found[1]


def challenger_since(session: Session, *, model: str, version: int) -> datetime | None:
    """When LeanOps last set ``challenger`` to ``version`` (its alias history)."""
    moved = state.last_move_to(session, model=model, alias=CHALLENGER, version=version)
    return moved.ts if moved is not None else None


def compare(session: Session, settings: Settings, *, actor: Actor, model: str, now: datetime | None = None,
            estimate: bool = True) -> Comparison:
    """The shadow comparison of ``model``'s current champion and challenger (reads only), with both
    versions' label-free estimates unless ``estimate`` is False.

    Raises:
        NotFound: no registered model ``model``.
    """
    from core.monitoring.performance import task_of

    require(session, actor, "read", f"model:{model}")
    now = now or utcnow()
    current = state.current(session, model=model)
    if not current:
        raise NotFound(f"no registered model named {model!r}")
    champion, challenger = current.get(CHAMPION), current.get(CHALLENGER)
    rules = settings.policies.rules_for(model)
    if champion is None or challenger is None:
        missing = "champion" if champion is None else "challenger"
        return Comparison(champion, challenger, 0, 0, None, None, None, None, None, "none", model=model,
                          reasons=(f"{model} has no {missing}: nothing to compare",))
    task = task_of(session, model=model, version=challenger)
    since = challenger_since(session, model=model, version=challenger)
    # the hot table and the Parquet partitions: a challenger runs for days, its early pairs long compacted
    rows = reads.shadow_pairs(session, settings.data_store, model=model, champion=champion,
                              challenger=challenger, since=since, limit=MAX_PAIRS)
    estimated = (estimates(session, settings, model=model, champion=champion, challenger=challenger, task=task,
                           since=since, now=now) if estimate and rows else (None, None))
    return summarise(rows, model=model, task=task, champion=champion, challenger=challenger, since=since,
                     now=now, rules=rules, estimated=estimated)


@dataclass
class _Shared:
    started: float  # time.monotonic() when its computation was submitted
    future: Future[Comparison]
    previous: Comparison | None  # the last finished comparison: answered while this one runs


_shared: dict[tuple[str, str, int | None, int | None], _Shared] = {}
_shared_lock = threading.Lock()
_shared_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="leanops-shadow")  # one at a time


def shared(factory: sessionmaker[Session], settings: Settings, *, actor: Actor, model: str) -> Comparison:
    """``compare`` for pages and the API: computed off the request path, once per ``SHARED_SECONDS`` per
    champion/challenger pair and process, however many readers ask (each comparison reads up to
    ``MAX_PAIRS`` pairs and every Parquet partition since the challenger was set). A stale one is answered
    while the next is computed; an alias move starts afresh. The caller's permission is checked each time.

    Raises:
        NotFound: no registered model ``model``.
        StoreUnavailable: the first comparison took longer than ``SHARED_WAIT_SECONDS``.
    """
    with factory() as session:
        require(session, actor, "read", f"model:{model}")
        current = state.current(session, model=model)
    if not current:
        raise NotFound(f"no registered model named {model!r}")
    key = (settings.db_url, model, current.get(CHAMPION), current.get(CHALLENGER))
    now = time.monotonic()
    with _shared_lock:
        entry = _shared.get(key)
        if entry is None or (entry.future.done() and (entry.future.exception() is not None
                                                      or now - entry.started >= SHARED_SECONDS)):
            previous = None if entry is None or entry.future.exception() is not None else entry.future.result()
            entry = _shared[key] = _Shared(now, _shared_pool.submit(_compare_as_system, factory, settings, model),
                                           previous)
            for old in sorted(_shared, key=lambda k: _shared[k].started)[:-256]:  # bounded: pairs come and go
                del _shared[old]
    if entry.previous is not None and not entry.future.done():
        return entry.previous
    try:
        return entry.future.result(timeout=SHARED_WAIT_SECONDS)
    except FutureTimeout:
        raise StoreUnavailable(f"the shadow comparison of {model} is still being computed; try again in a "
                               "minute") from None


def _compare_as_system(factory: sessionmaker[Session], settings: Settings, model: str) -> Comparison:
    with factory() as session:
        return compare(session, settings, actor=ACTOR, model=model)


def summarise(rows: list[Any], *, model: str, task: str, champion: int, challenger: int, since: datetime | None,
              now: datetime, rules: policy.ModelPolicy,
              estimated: tuple[dict[str, float] | None, dict[str, float] | None] = (None, None)) -> Comparison:
    """The comparison from paired rows (ts, request_id, challenger output, challenger ms, champion output,
    champion ms, label or None) and each version's label-free estimate (``estimates``)."""
    agree = same if task == "classification" else close
    agreed = [agree(r[2], r[4]) for r in rows]
    labelled = [r for r in rows if r[6] is not None]
    champion_score = challenger_score = p_value = None
    if labelled:
        if task == "classification":
            ch = [same(r[4], r[6]) for r in labelled]
            cl = [same(r[2], r[6]) for r in labelled]
            champion_score, challenger_score = float(np.mean(ch)), float(np.mean(cl))
            p_value = mcnemar(ch, cl)
        else:
            ch_err = [abs(float(r[4]) - float(r[6])) for r in labelled]
            cl_err = [abs(float(r[2]) - float(r[6])) for r in labelled]
            champion_score, challenger_score = float(np.mean(ch_err)), float(np.mean(cl_err))
            p_value = wilcoxon(ch_err, cl_err)
    age = (now - since).total_seconds() / 86400 if since is not None else 0.0
    decision, reasons = decide(task=task, labelled=len(labelled), champion_score=champion_score,
                               challenger_score=challenger_score, p_value=p_value, age_days=age, rules=rules,
                               champion_estimate=estimated[0], challenger_estimate=estimated[1])
    per_request: dict[str, tuple[float, float]] = {r[1]: (float(r[5]), float(r[3])) for r in rows}
    days: dict[str, dict[str, list[Any]]] = defaultdict(lambda: {"agreed": [], "ch": [], "cl": []})
    for r, a in zip(rows, agreed, strict=True):
        day = days[r[0].date().isoformat()]
        day["agreed"].append(a)
        if r[6] is not None:
            day["ch"].append(_score(task, r[4], r[6]))
            day["cl"].append(_score(task, r[2], r[6]))
    return Comparison(
        champion, challenger, len(rows), len(labelled), _round(float(np.mean(agreed))) if rows else None,
        METRIC[task], _round(champion_score), _round(challenger_score),
        None if p_value is None else float(f"{p_value:.4g}"), decision, model=model,
        task=task, reasons=reasons,
        champion_latency_ms=_round(float(np.median([v[0] for v in per_request.values()]))) if rows else None,
        challenger_latency_ms=_round(float(np.median([v[1] for v in per_request.values()]))) if rows else None,
        champion_estimate=estimated[0], challenger_estimate=estimated[1],
        since=since.isoformat() if since is not None else None,
        days=[{"day": d, "compared": len(v["agreed"]), "agreement": _round(float(np.mean(v["agreed"]))),
               "labelled": len(v["ch"]),
               "champion_score": _round(float(np.mean(v["ch"]))) if v["ch"] else None,
               "challenger_score": _round(float(np.mean(v["cl"]))) if v["cl"] else None}
              for d, v in sorted(days.items())])


def _score(task: str, output: Any, label: Any) -> float:
    return float(same(output, label)) if task == "classification" else abs(float(output) - float(label))


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None or math.isnan(value) else round(value, digits)


# -- acting on the decision ----------------------------------------------------------------------

def decided(session: Session, *, model: str, challenger: int) -> bool:
    """Whether the policy already decided on this challenger version (decided once per version)."""
    events = audit.of_subject(session, subject=f"model:{model}", actions=(DECIDED,), limit=50)
    return any(e.details.get("challenger") == challenger for e in events)


def run(factory: sessionmaker[Session], settings: Settings, *, model: str) -> dict[str, Any]:
    """Compare, and act on the decision if the policy shadows ``model`` and has not decided on this
    challenger yet: promote (``shadow.decide: promote``; an approval request when approval is on) or
    propose it to approvers (``alert``), or clear the challenger alias. Audited as ``system:shadow``."""
    from core.platform.database import transaction
    from core.promotion import approvals, moves
    from core.promotion.gates import GatesFailed, open_request

    rules = settings.policies.rules_for(model)
    with factory() as session:
        result = compare(session, settings, actor=ACTOR, model=model)
        already = result.challenger is not None and decided(session, model=model, challenger=result.challenger)
    doc = result.as_dict()
    if not rules.shadow.enabled or result.decision not in ("promote", "discard") or already:
        return {**doc, "acted": None}
    assert result.challenger is not None
    version, numbers = result.challenger, {k: doc[k] for k in (
        "champion", "challenger", "compared", "labelled", "agreement", "metric", "champion_score",
        "challenger_score", "p_value", "champion_estimate", "challenger_estimate", "decision", "reasons")}
    mode = rules.shadow.decide
    acted = "proposed" if mode == "alert" else ""
    if result.decision == "promote" and mode == "promote" and not rules.approval.required:
        try:
            moves.run_move(factory, settings, lambda s: moves.promote_in(
                s, settings, actor=ACTOR, model=model, version=version,
                reason=f"shadow: {'; '.join(result.reasons)}"))
            acted = "promoted"
        except GatesFailed as exc:
            acted = f"blocked by the gates: {exc}"
    elif result.decision == "promote":  # approval on, or decide: alert: the approvers decide
        with transaction(factory) as session:
            if open_request(session, model, version) is None:
                approvals.request_promotion(session, actor=ACTOR, model=model, version=version,
                                            reason=f"shadow: {'; '.join(result.reasons)}")
        acted = "approval requested"
    elif mode == "promote":
        moves.run_move(factory, settings, lambda s: moves.discard_challenger_in(
            s, settings, actor=ACTOR, model=model, version=version, reason=f"shadow: {'; '.join(result.reasons)}"))
        acted = "discarded"
    with transaction(factory) as session:
        audit.record(session, ACTOR, DECIDED, f"model:{model}", {**numbers, "acted": acted, "mode": mode})
    if acted in ("promoted", "discarded"):
        from core.serving.cache import alias_moved

        alias_moved(model)  # this process's caches follow at once (others within serving_reload_seconds)
    verb = {"promote": "beats", "discard": "does not beat"}[result.decision]
    notify.notify(factory, settings, condition="promotion", model=model,
                  severity="info" if result.decision == "promote" else "warning",
                  title=f"{model}: shadow challenger v{version} {verb} champion v{result.champion} — {acted}",
                  message=f"On {result.labelled} paired label(s) of {result.compared} shadowed record(s): "
                          f"{'; '.join(result.reasons)}. Decision: {result.decision} ({acted}).",
                  details=numbers)
    return {**doc, "acted": acted}


def run_all(factory: sessionmaker[Session], settings: Settings) -> dict[str, Any]:
    """``run`` for every model whose policy shadows it and that has a challenger (the monitor job's round)."""
    rules = settings.policies.file()
    out: dict[str, Any] = {}
    with factory() as session:
        champions = state.champions(session)
    for model, found in sorted(champions.items()):
        if not policy.for_model(rules, model).shadow.enabled or found is None:
            continue
        try:
            done = run(factory, settings, model=model)
        except Exception as exc:  # noqa: BLE001 - one model's failure must not stop the others; logged
            log.exception("shadow decision for %s failed", model)
            out[model] = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
            continue
        out[model] = {"decision": done["decision"], "acted": done["acted"]}
    return out
