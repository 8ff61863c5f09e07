"""The report sections an auditor brings (issue "evidence an auditor signs off"): the inventory entry and its
reviews, the signed test reports, accuracy per group, whether fairness is gated, the post-market monitoring
plan generated from the policy, the retention statement against Art. 19, every change with its author, the
late-label ledger, and a summary of repetitive audit events.

Each function reads only and returns a JSON-ready section with its ``missing`` list, as ``reports.py``'s.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from core import audit, formats
from core.compliance import inventory
from core.policy import POLICY_FILE, ModelPolicy
from core.promotion import test_reports
from core.registry import state, stewardship
from core.training import runs
from db.models import TrainingRun

if TYPE_CHECKING:
    from collections.abc import Callable

    from core.settings import Settings

ART19_DAYS = 183  # six months
LEDGER_CHECKS = 30  # the newest drift checks with an estimate the ledger looks at
REPEATED = 10  # an action seen more often than this among the listed events is summarised with its count


def _iso(ts: datetime | None) -> str | None:
    return ts.isoformat() if ts is not None else None


# -- inventory and reviews -----------------------------------------------------------------------

def inventory_section(session: Session, settings: Settings, *, model: str, now: datetime) -> dict[str, Any]:
    row = inventory.row_of(session, settings, model=model, now=now)
    reviews = stewardship.reviews_of(session, model=model)
    missing = []
    if not row.owner:
        missing.append("no owner account named in the inventory entry")
    if not row.intended_use:
        missing.append("intended use not filled in")
    if not row.out_of_scope_use:
        missing.append("out-of-scope use not filled in")
    if row.overdue:
        missing.append(f"the periodic review is overdue since {row.next_review_due}")
    elif not reviews:
        missing.append("no periodic review recorded yet")
    return {"owner": row.owner, "risk_tier": row.risk_tier, "tier_requires": row.tier_requires,
            "intended_use": row.intended_use, "out_of_scope_use": row.out_of_scope_use, "tags": row.tags,
            "status": row.status, "review_interval_months": row.review_interval_months,
            "review_blocks_promotion": row.review_blocks_promotion, "last_review": row.last_review,
            "next_review_due": row.next_review_due, "overdue": row.overdue, "open_alerts": row.open_alerts,
            "reviews": [r.as_dict() for r in reviews], "missing": missing}


# -- signed test reports -------------------------------------------------------------------------

def test_reports_section(session: Session, settings: Settings, *, model: str, version: int) -> dict[str, Any]:
    """Every signed test report of the version, embedded byte for byte, each verified now with the workspace key."""
    stored = test_reports.of_version(session, model=model, version=version)
    public = test_reports.public_key_text(settings) if stored else None
    rows = []
    for r in stored:
        check = test_reports.verify_bytes(r.document.encode("utf-8"), public_key=public) if public else None
        signatures = [{k: s.get(k) for k in ("signer", "role", "signed_at")} for s in r.doc.get("signatures", [])]
        rows.append({"id": r.id, "context": r.context, "passed": r.passed, "created_at": _iso(r.created_at),
                     "report_sha256": r.report_sha256, "signatures": signatures,
                     "verified": bool(check and check.ok), "verification": check.reason if check else "",
                     "document": r.document})
    return {"public_key": public, "format": test_reports.FORMAT, "reports": rows,
            "all_verified": all(r["verified"] for r in rows),
            "how_to_verify": "save a report's document byte for byte as FILE and run: python cli.py report verify "
                             "FILE --public-key audit.pub",
            "missing": [] if rows else ["no signed test report: the gates of this version were never evaluated "
                                        "since signed test reports began"]}


# -- accuracy per group and the fairness gate ----------------------------------------------------

def group_performance(run: TrainingRun | None) -> dict[str, Any]:
    """Accuracy (classification: accuracy, macro F1; regression: MAE, R²) per group of the sensitive column,
    with the gap between the best and the worst group."""
    fairness = (run.fairness or {}) if run else {}
    column = next(iter(fairness), None)
    groups = (fairness.get(column) or {}).get("by_group") if column else None
    if not column or not isinstance(groups, dict) or not groups:
        return {"column": None, "metrics": [], "groups": [], "gaps": {},
                "missing": ["no per-group accuracy: training named no sensitive column (--sensitive)"]}
    metrics = [m for m in ("accuracy", "f1", "mae", "r2") if any(isinstance(g, dict) and m in g
                                                                 for g in groups.values())]
    rows: list[dict[str, Any]] = [{"group": str(name), "count": int((g or {}).get("count") or 0),
                                   **{m: (g or {}).get(m) for m in metrics}} for name, g in sorted(groups.items())]
    gaps: dict[str, float] = {}
    for m in metrics:
        values: list[float] = [float(r[m]) for r in rows if isinstance(r[m], int | float)]
        if values:
            gaps[m] = max(values) - min(values)
    return {"column": column, "metrics": metrics, "groups": rows, "gaps": gaps, "missing": []}


def fairness_gate(rules: ModelPolicy, run: TrainingRun | None) -> dict[str, Any]:
    """Whether fairness is gated, on which column and from where (the policy, or the column named at training)."""
    trained = run.sensitive if run else None
    measured = ((run.fairness or {}) if run else {})
    gated_at_training = trained if trained and isinstance(measured.get(trained), dict) and \
        measured[trained].get("demographic_parity_ratio") is not None else None
    column, source = (rules.fairness.column, "policy") if rules.fairness.column else \
        (gated_at_training, "training") if gated_at_training else (None, None)
    ratio = ((measured.get(column) or {}).get("demographic_parity_ratio") if column else None)
    if column is None:
        statement = ("FAIRNESS NOT GATED: the policy names no fairness column and training named no sensitive "
                     "column, so no fairness measure stood between this version and production")
    else:
        origin = "the policy" if source == "policy" else "the sensitive column named at training"
        statement = (f"fairness gated on {column} (from {origin}): "
                     f"demographic parity ratio {formats.value(ratio) if ratio is not None else 'not measured'} "
                     "against at least "
                     f"{rules.fairness.demographic_parity_ratio_min:g}")
    return {"gated": column is not None, "column": column, "source": source, "minimum":
            rules.fairness.demographic_parity_ratio_min, "observed": ratio, "statement": statement}


# -- post-market monitoring plan -----------------------------------------------------------------

def post_market_plan(session: Session, settings: Settings, rules: ModelPolicy, *, model: str) -> dict[str, Any]:
    """What is watched, with which thresholds and schedules, who is alerted and what happens automatically,
    generated from the model's effective policy (Art. 72(3))."""
    from core.alerts import channels

    d, p, r, rb = rules.drift, rules.performance, rules.retrain, rules.rollback
    floors = "; ".join(f"{task}: {', '.join(f'{k} {v}' for k, v in rule.items())}" for task, rule in p.floor.items())
    watched = [
        {"what": "input and output drift", "how": f"KS / chi-squared (p < {d.p_value:g}) up to {d.large_sample_rows:,} "
         f"rows, normalised Wasserstein > {d.wasserstein:g} / Jensen-Shannon > {d.jensenshannon:g} above; PSI > "
         f"{d.psi:g} reported", "when": f"cron {d.schedule} (UTC) over the last {d.window_hours:g} h of predictions"
         if d.schedule else "only when someone runs a check (no schedule)",
         "verdict": f"drift when the outputs drift ({'counts' if d.prediction_drift else 'reported only'}), a "
                    f"drifted column is among the top {d.top_k} by importance or the drifted ones carry "
                    f"{d.importance_share:.0%} of it, or {d.share:.0%} of the columns drift",
         "automatic": "a retrain is queued" if r.on_drift else "an alert only"},
        {"what": "live performance from feedback labels", "how": f"floor {floors} over the newest {p.window} labels "
         f"(at least {p.min_labels})", "when": "every 15 minutes (monitor.performance)",
         "verdict": "below the floor",
         "automatic": {True: f"the champion is rolled back within {rb.window_hours:g} h of its promotion",
                       False: "an alert only", "approve": "a rollback request waits for an approver"}[rb.auto]},
        {"what": "label-free performance estimate (CBPE / DLE)", "how": "with every drift check",
         "when": "with every drift check", "verdict": "estimate below the floor",
         "automatic": "acts like live performance (alert, retrain, rollback)" if p.use_estimate else "reported only"},
        {"what": "periodic review", "how": f"{rules.risk_tier}-risk tier",
         "when": f"every {rules.review.interval_months.get(rules.risk_tier)} months"
         if rules.review.interval_months.get(rules.risk_tier) else "no interval for this tier",
         "verdict": "overdue", "automatic": "promotion blocked (gate review) and an alert"
         if rules.risk_tier in rules.review.blocking else "an alert"},
        {"what": "retraining", "how": f"on drift: {r.on_drift}; data growth of {r.on_data_growth:.0%}"
         if r.on_data_growth is not None else f"on drift: {r.on_drift}; no data-growth trigger",
         "when": f"cron {r.schedule} (UTC)" if r.schedule else "no schedule",
         "verdict": "a new version through the same gates",
         "automatic": "promoted when every gate passes" if rules.auto_promote
         else "made challenger; a person promotes"},
        {"what": "audit log integrity", "how": "hash chain verified against signed checkpoints",
         "when": "hourly (audit-verify)", "verdict": "broken or rewritten", "automatic": "an integrity alert"},
    ]
    with_channels = channels.channels(session, keys=None)
    alerted = [f"{c.name} ({c.kind})" for c in with_channels if c.enabled]
    return {"watched": watched, "alerted": alerted, "cooldown_minutes": rules.alerts.cooldown_minutes,
            "shadow": {"enabled": rules.shadow.enabled, "decide": rules.shadow.decide},
            "missing": [] if alerted else ["no alert channel is enabled: alerts are stored and shown, sent to nobody"]}


# -- retention -----------------------------------------------------------------------------------

def retention(settings: Settings) -> dict[str, Any]:
    days = settings.prediction_retention_days
    meets = days >= ART19_DAYS
    statement = (f"Predictions, their labels and refused requests are kept {days} days; the audit log (every "
                 "mutating action, hash-chained and signed) is never deleted by LeanOps. Art. 19 asks for at least "
                 f"six months ({ART19_DAYS} days): " + ("met." if meets else
                 f"NOT MET for the prediction log: raise LEANOPS_PREDICTION_RETENTION_DAYS to {ART19_DAYS} or more."))
    return {"prediction_log_days": days, "audit_log": "kept without end (never purged)",
            "required_days": ART19_DAYS, "meets_art19": meets, "statement": statement,
            "missing": [] if meets else [f"the prediction log is kept {days} days, below Art. 19's six months"]}


# -- changes -------------------------------------------------------------------------------------

def changes(session: Session, *, model: str, version: int, run: TrainingRun | None) -> dict[str, Any]:
    """Every version and alias move of the model and every policy change, each with its author; the policy
    changes between this version's training and its (first) promotion are named with their diff."""
    versions = [{"version": r.model_version, "trained_by": r.created_by, "at": _iso(r.finished_at or r.started_at),
                 "dataset": f"{r.dataset_name}:{r.dataset_version}", "model_kind": r.model_kind, "status": r.status}
                for r in runs.version_rows(session, model=model)]
    moves = [{"ts": _iso(m.ts), "alias": m.alias, "action": m.action, "actor": m.actor, "from_version": m.from_version,
              "to_version": m.to_version, "forced": m.forced, "reason": m.reason}
             for m in state.history(session, model=model, alias=None, limit=0, oldest_first=True)]
    policy_events = list(reversed(audit.of_subject(session, subject=POLICY_FILE, actions=("policy.changed",),
                                                   limit=1000)))
    trained_at = (run.finished_at or run.started_at) if run else None
    promoted = next((m for m in state.history(session, model=model, alias="champion", limit=0, oldest_first=True)
                     if m.to_version == version), None)
    policy = []
    for e in policy_events:
        between = (trained_at is not None and e.ts >= trained_at
                   and (promoted is None or e.ts <= promoted.ts))
        policy.append({"ts": _iso(e.ts), "actor": e.actor, "diff": str((e.details or {}).get("diff", "")),
                       "between_training_and_promotion": between})
    return {"versions": versions, "alias_moves": moves, "policy_changes": policy,
            "between_training_and_promotion": sum(p["between_training_and_promotion"] for p in policy),
            "promoted_at": _iso(promoted.ts) if promoted else None, "missing": []}


# -- the late-label ledger -----------------------------------------------------------------------

def late_label_ledger(session: Session, settings: Settings, *, model: str, version: int, task: str | None,
                      labelled: Callable[[], list[tuple[Any, ...]]]) -> dict[str, Any]:
    """For each past drift check with a label-free estimate: the estimate against the metric realised once the
    labels of that window's predictions came, so a reader sees whether the estimates can be trusted.
    ``labelled``: the version's labelled predictions (the report reads them once for this and its live metrics)."""
    from core.monitoring import checks, performance

    found = [c for c in checks.of_version(session, model=model, version=version, limit=LEDGER_CHECKS)
             if c.estimated_performance]
    rows = []
    labelled_pairs = labelled() if found and task else []
    for check in sorted(found, key=lambda c: c.ts):
        for metric, est in check.estimated_performance.items():
            row: dict[str, Any] = {"check": check.id, "ts": _iso(check.ts), "window": check.window, "metric": metric,
                                   "estimate": est.get("value"), "lower": est.get("lower"), "upper": est.get("upper"),
                                   "realised": None, "labels": 0, "within_band": None}
            if check.source != "window":
                row["note"] = "the data was an uploaded file: no served predictions to label"
                rows.append(row)
                continue
            hours = float(settings.policies.rules_for(model).drift.window_hours)
            start = check.ts - timedelta(hours=hours)
            pairs = [p for p in labelled_pairs if start <= p[0] <= check.ts]
            row["labels"] = len(pairs)
            if pairs and task:
                realised = performance.score(task, [p[3] for p in pairs], [p[2] for p in pairs]).get(metric)
                row["realised"] = realised
                if realised is None:
                    row["note"] = (f"{metric} is not measured from labels alone (the log keeps predicted classes or "
                                   "values, not scores)")
                    rows.append(row)
                    continue
                if row["lower"] is not None and row["upper"] is not None:
                    row["within_band"] = bool(row["lower"] <= realised <= row["upper"])
                row["note"] = f"{len(pairs)} labelled prediction(s) of the window"
            else:
                row["note"] = "no labels yet for this window's predictions"
            rows.append(row)
    judged = [r for r in rows if r["within_band"] is not None]
    missing = []
    if not rows:
        missing.append("no drift check with a label-free estimate yet")
    elif not any(r["realised"] is not None for r in rows):
        missing.append("no estimated window has received labels yet")
    return {"windows": rows, "judged": len(judged), "within_band": sum(bool(r["within_band"]) for r in judged),
            "missing": missing}


# -- repetitive audit events ---------------------------------------------------------------------

def events_summary(events: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts per action; actions seen more than ``REPEATED`` times (feedback, predictions refused, …) are
    summarised in the PDF by their count, first and last time, and the others listed one by one."""
    counts = Counter(e["action"] for e in events)
    repeated = sorted(a for a, n in counts.items() if n > REPEATED)
    summary = []
    for action in repeated:
        times = [e["ts"] for e in events if e["action"] == action]
        summary.append({"action": action, "count": counts[action], "first": min(times), "last": max(times)})
    return {"by_action": dict(sorted(counts.items())), "summarised": summary}


def add_sections(session: Session, settings: Settings, content: dict[str, Any], *, run: TrainingRun | None,
                 model: str, version: int, now: datetime, labelled: Callable[[], list[tuple[Any, ...]]]) -> None:
    """Put the auditor's sections into a report being built (``reports.build``), and the facts they add to
    the gates (fairness gated or not, policy changes between training and promotion) and the audit section."""
    rules = settings.policies.rules_for(model)
    content["inventory"] = inventory_section(session, settings, model=model, now=now)
    content["test_reports"] = test_reports_section(session, settings, model=model, version=version)
    content["group_performance"] = group_performance(run)
    content["post_market_plan"] = post_market_plan(session, settings, rules, model=model)
    content["retention"] = retention(settings)
    content["changes"] = changes(session, model=model, version=version, run=run)
    content["late_label_ledger"] = late_label_ledger(session, settings, model=model, version=version,
                                                     task=run.task if run else None, labelled=labelled)
    gates = content["gates"]
    gates["fairness"] = fairness_gate(rules, run)
    gates["policy_changes_before_promotion"] = [p for p in content["changes"]["policy_changes"]
                                                if p["between_training_and_promotion"]]
    if not gates["fairness"]["gated"]:
        gates["missing"] = [*gates["missing"], "fairness not gated (no fairness column in the policy, no sensitive "
                                               "column at training)"]
    content["audit"]["summary"] = events_summary(content["audit"]["events"])
