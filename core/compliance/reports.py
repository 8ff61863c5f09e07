"""Compliance report of one model version, as JSON (validated by ``core/compliance/report_schema.json``) and PDF.

Sections: identity, model card, training data, training configuration, evaluation, gates, approvals and
promotion history, monitoring, audit. Each section lists in ``missing`` what could not be found (a version
registered outside LeanOps, no monitoring yet, a dataset file removed), so the report always builds.

The report's own hash (``identity.report_sha256``) is the sha256 of the canonical JSON of the whole
report without that one field: sorted keys, no spaces, UTF-8 (``canonical_bytes``).
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session, sessionmaker

from core import audit
from core.accounts.auth import require
from core.actors import Actor
from core.alerts import notify
from core.compliance import coverage, evidence
from core.data import datasets
from core.errors import InvalidInput, LeanOpsError, NotFound
from core.platform.database import transaction
from core.platform.prediction_log import reads
from core.platform.registry_port import CHALLENGER, RegistryPort
from core.platform.storage import DataStore
from core.registry import cards, gate_records, state
from core.training import runs
from db.models import AliasMove, TrainingRun, utcnow

if TYPE_CHECKING:
    from collections.abc import Callable

    from core.monitoring.checks import CheckView

FORMAT_VERSION = 2  # 2: coverage matrix, inventory, signed test reports, group accuracy, plan, retention, changes
FORMATS = ("pdf", "json")
SCHEMA_PATH = Path(__file__).resolve().parent / "report_schema.json"
AUDIT_EVENTS_MAX = 500  # the newest events of the model; the count says how many exist


def _iso(ts: datetime | None) -> str | None:
    return ts.isoformat() if ts is not None else None


def canonical_bytes(content: dict[str, Any]) -> bytes:
    """The bytes the report hash covers: the report without ``identity.report_sha256``, canonical JSON."""
    doc = dict(content)
    doc["identity"] = {k: v for k, v in content["identity"].items() if k != "report_sha256"}
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def report_hash(content: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_bytes(content)).hexdigest()


def schema() -> dict[str, Any]:
    """The published JSON Schema (draft 2020-12) every JSON report validates against."""
    return json.loads(SCHEMA_PATH.read_text())


# -- sections ------------------------------------------------------------------------------------

def _run(session: Session, model: str, version: int) -> TrainingRun | None:
    return runs.row_for_version(session, model=model, version=version)


def _identity(run: TrainingRun | None, mlflow: dict[str, Any] | None, registry: RegistryPort, model: str, version: int,
              now: datetime) -> dict[str, Any]:
    missing = []
    model_uri = (run.model_uri if run else None) or (mlflow or {}).get("source")
    sha, files = None, 0
    if mlflow is None:
        missing.append("MLflow has no such registered version (deleted, or the store is unavailable)")
    if model_uri:
        try:
            sha, files = registry.hash_logged_model(model_uri)
        except Exception as exc:  # noqa: BLE001 - any store failure is reported as missing, not raised
            missing.append(f"the model files could not be read for hashing: {str(exc).splitlines()[0][:200]}")
        if sha is not None and files == 0:
            sha, missing = None, [*missing, "the model artifact has no files"]
    else:
        missing.append("no model artifact is recorded for this version")
    return {"model": model, "version": version, "mlflow_run_id": (run.mlflow_run_id if run else None)
            or (mlflow or {}).get("run_id"), "model_uri": model_uri, "model_sha256": sha, "model_files": files,
            "report_time": _iso(now), "report_format_version": FORMAT_VERSION, "report_sha256": "",
            "missing": missing}


def _model_card(session: Session, model: str, version: int) -> dict[str, Any]:
    card = cards.get(session, model=model, version=version)
    missing = [f"{name.replace('_', ' ')} not filled in" for name, text in card.fields().items() if not text]
    return {**card.fields(), "updated_by": card.updated_by, "updated_at": _iso(card.updated_at), "missing": missing}


def _training_data(session: Session, run: TrainingRun | None, store: DataStore) -> dict[str, Any]:
    empty: dict[str, Any] = {"dataset": None, "version": None, "sha256": None, "rows": None, "columns": [],
                             "schema_version": None, "schema": None, "file_present": False, "certificate": None}
    if run is None:
        return {**empty, "missing": ["no LeanOps training run: the training data is unknown"]}
    doc = {**empty, "dataset": run.dataset_name, "version": run.dataset_version, "sha256": run.dataset_sha256}
    row = datasets.version_by_id(session, version_id=run.dataset_version_id) if run.dataset_version_id else None
    if row is None:
        return {**doc, "missing": [f"dataset version {run.dataset_name}:{run.dataset_version} is no longer "
                                   "registered; only its sha256 recorded by the run is known"]}
    missing = []
    present = store.exists(datasets.key_for(row.sha256))
    if not present:
        missing.append(f"the file of {run.dataset_name}:{row.version} was removed from the store "
                       "(its registered hash, rows, schema and certificate are shown)")
    spec = datasets.schema_spec(session, dataset_id=row.dataset_id, version=row.schema_version)
    checks = [{"check": str(c.get("check")), "column": c.get("column"), "passed": bool(c.get("passed")),
               "observed": str(c.get("observed", "")), "expected": str(c.get("expected", ""))}
              for c in row.certificate or []]
    return {**doc, "rows": row.rows, "columns": [{"name": c, "dtype": str(row.dtypes.get(c, ""))} for c in row.columns],
            "schema_version": row.schema_version, "schema": spec, "file_present": present,
            "certificate": {"passed": row.certificate_passed, "at": _iso(row.certificate_at), "checks": checks},
            "missing": missing}


def _training_config(run: TrainingRun | None) -> dict[str, Any]:
    if run is None:
        return {"model_kind": None, "task": None, "target": None, "sensitive": None, "parameters": {}, "seed": None,
                "holdout": None, "code_version": None, "trained_by": None, "started_at": None, "finished_at": None,
                "status": None, "missing": ["no LeanOps training run: the configuration is unknown"]}
    missing = ["the code version is unknown (not a git checkout)"] if run.code_version == "unknown" else []
    return {"model_kind": run.model_kind, "task": run.task, "target": run.target, "sensitive": run.sensitive,
            "parameters": run.params, "seed": run.seed, "holdout": (run.spec or {}).get("holdout"),
            "code_version": run.code_version, "trained_by": run.created_by, "started_at": _iso(run.started_at),
            "finished_at": _iso(run.finished_at), "status": run.status, "missing": missing}


def _provenance(session: Session, model: str, version: int) -> str | None:
    """Where a version trained elsewhere came from (None for one LeanOps trained)."""
    from core.training import imports

    record = imports.of_version(session, model=model, version=version)
    return record.provenance if record is not None else None


def _evaluation(run: TrainingRun | None) -> dict[str, Any]:
    doc: dict[str, Any] = {"primary_metric": None, "metrics": {}, "baseline": {}, "fairness": {}, "chart": None,
                           "confusion_matrix": None, "residuals": None}
    if run is None or not run.metrics:
        return {**doc, "missing": ["no evaluation: the version has no LeanOps training run with metrics"]}
    plots = run.plots or {}
    doc |= {"primary_metric": run.primary_metric, "metrics": run.metrics, "baseline": run.baseline or {},
            "fairness": run.fairness or {}}
    missing = [] if run.fairness else ["no fairness metrics (training named no sensitive column)"]
    if "confusion_matrix" in plots:
        doc |= {"chart": "confusion_matrix", "confusion_matrix": plots["confusion_matrix"]}
    elif "residuals" in plots:
        doc |= {"chart": "residuals", "residuals": plots["residuals"]}
    else:
        missing.append("no confusion matrix or residuals were stored")
    return {**doc, "missing": missing}


def _check_row(check: dict[str, Any]) -> dict[str, Any]:
    return {"name": check["name"], "observed": check.get("observed"), "required": check.get("required"),
            "passed": bool(check["passed"]), "verdict": "pass" if check["passed"] else "fail",
            "detail": check.get("detail", "")}


def _move_row(move: AliasMove) -> dict[str, Any]:
    return {"ts": _iso(move.ts), "alias": move.alias, "action": move.action, "actor": move.actor,
            "reason": move.reason, "forced": move.forced, "from_version": move.from_version,
            "to_version": move.to_version}


def _gates(session: Session, model: str, version: int) -> dict[str, Any]:
    evaluations = gate_records.history(session, model=model, version=version)
    forced = state.moves_of_version(session, model=model, version=version, forced_only=True)
    forced_rows = [{**_move_row(m), "failed_checks": [c["name"] for c in (m.checks or {}).get("checks", [])
                                                      if not c["passed"]]} for m in forced]
    history = [{"ts": _iso(g.ts), "context": g.context, "passed": g.passed} for g in evaluations]
    if not evaluations:
        return {"evaluated": False, "passed": None, "context": None, "evaluated_at": None, "checks": [],
                "history": [], "forced_promotions": forced_rows, "missing": ["the gates were never evaluated"]}
    latest = evaluations[-1]
    return {"evaluated": True, "passed": latest.passed, "context": latest.context, "evaluated_at": _iso(latest.ts),
            "checks": [_check_row(c) for c in latest.checks.get("checks", [])], "history": history,
            "forced_promotions": forced_rows, "missing": []}


def _approvals(session: Session, model: str, version: int) -> dict[str, Any]:
    from core.promotion.approvals import decisions_on, requests_of_version
    from core.registry.views import champion_periods

    requests: list[dict[str, Any]] = []
    for req in requests_of_version(session, model=model, version=version):
        decisions = decisions_on(session, request_id=req.id)
        requests.append({"id": req.id, "requested_by": req.requested_by, "reason": req.reason, "status": req.status,
                         "created_at": _iso(req.created_at), "decided_at": _iso(req.decided_at),
                         "decisions": [{"approver": a.approver, "decision": a.decision, "comment": a.comment,
                                        "ts": _iso(a.ts)} for a in decisions]})
    moves = state.moves_of_version(session, model=model, version=version)
    periods = [{"start": _iso(p.start), "end": _iso(p.end), "moved_by": p.moved_by, "action": p.action,
                "reason": p.reason, "forced": p.forced} for p in champion_periods(session, model=model)
               if p.version == version]
    approvers = sorted({d["approver"] for r in requests for d in r["decisions"] if d["decision"] == "approve"})
    missing = [] if requests else ["no promotion request or approval was recorded for this version"]
    if not periods:
        missing.append("this version has never been champion")
    return {"approvers": approvers, "requests": requests, "moves": [_move_row(m) for m in moves],
            "champion_periods": periods, "missing": missing}


def _performance(labelled: Callable[[], list[tuple[Any, ...]]], task: str | None) -> dict[str, Any] | None:
    """Live metrics from feedback labels, measured as training measured the holdout (core.monitoring.performance),
    over the hot and the compacted predictions."""
    from core.monitoring import performance

    pairs = labelled()
    if not pairs or task is None:
        return None
    return {"labelled": len(pairs), "metrics": performance.score(task, [p[3] for p in pairs], [p[2] for p in pairs])}


def _monitoring(session: Session, store: DataStore, labelled: Callable[[], list[tuple[Any, ...]]], model: str,
                version: int, task: str | None, periods: list[dict[str, Any]]) -> dict[str, Any]:
    from core.monitoring import checks as drift_checks

    checks = drift_checks.count_of_version(session, model=model, version=version)
    drifted = drift_checks.count_of_version(session, model=model, version=version, drifted_only=True)
    latest = next(iter(drift_checks.of_version(session, model=model, version=version, limit=1)), None)
    latest_doc = None if latest is None else _latest_check(latest)
    performance = _performance(labelled, task)
    alerts = [a for a in notify.of_model(session, model=model)
              if (a.details or {}).get("version") == version or _within(a.ts, periods)]
    missing = []
    if not checks:
        missing.append("no drift checks yet")
    if performance is None:
        missing.append("no performance data (no feedback labels for predictions of this version)")
    return {"drift": {"checks": checks, "drifted": drifted, "latest": latest_doc}, "performance": performance,
            "predictions": reads.count(session, store=store, model=model, version=version),
            "alerts": [{"ts": _iso(a.ts), "condition": a.condition, "severity": a.severity, "title": a.title,
                        "suppressed": a.suppressed, "delivery": delivery(a.suppressed, a.deliveries)}
                       for a in alerts], "missing": missing}


def _latest_check(view: CheckView) -> dict[str, Any]:
    """The newest drift check, led by what matters: the headline ("c1 drifted; it carries 18 % of the
    model's importance; estimated F1 0.91 → 0.84"), the rules that made the verdict, the drifted columns
    ranked by their share of the model's importance, and the label-free estimate."""
    from core.monitoring.checks import headline

    return {
        "ts": _iso(view.ts), "source": view.source, "window": view.window, "current_rows": view.current_rows,
        "drift_share": view.drift_share, "threshold": view.threshold, "drift_detected": view.drift_detected,
        "drifted_columns": sorted(c for c, v in view.columns.items() if isinstance(v, dict) and v.get("drifted")),
        "headline": headline(view),
        "verdict": [str(r.get("text", "")) for r in view.verdict.get("reasons", [])],
        "not_counted": [str(t) for t in view.verdict.get("not_counted", [])],
        "drifted_ranked": [{"column": c, "importance": view.columns[c].get("importance")} for c in view.drifted],
        "estimated_performance": view.estimated_performance,
    }


def delivery(suppressed: bool, deliveries: list[Any] | None) -> str:
    """Whether an alert reached anyone, in words: "sent" only when a channel took it (not merely "not suppressed")."""
    if suppressed:
        return "not sent: cooldown"
    if not deliveries:
        return "not sent: no channel"
    oks = [d.get("ok") for d in deliveries]
    if any(ok is None for ok in oks):
        return "sending"
    if all(oks):
        return "sent"
    return "not sent: delivery failed" if not any(oks) else "partly sent"


def _shadow(session: Session, settings: Any, model: str, version: int) -> dict[str, Any] | None:
    """The challenger's shadow comparison with the champion (None for a version that is not the challenger)."""
    from core.monitoring import shadow_comparison

    try:
        if state.current(session, model=model).get(CHALLENGER) != version:
            return None
        return shadow_comparison.compare(session, settings, actor=shadow_comparison.ACTOR, model=model).as_dict()
    except LeanOpsError as exc:  # the report is still written, saying what is missing
        return {"error": str(exc)}


def _batch_runs(session: Session, model: str, version: int) -> list[dict[str, Any]]:
    """The batch scoring runs of this version (newest 100): rows, time, output and its sha256, who, status."""
    from core.serving import batch_runs

    return [{"batch_id": r.id, "started_at": _iso(r.started_at), "seconds": r.seconds, "rows": r.rows,
             "status": r.status, "source": r.source, "out": r.out, "output_sha256": r.output_sha256,
             "by": r.created_by, "schedule": r.schedule} for r in batch_runs.of_model(session, model=model,
                                                                                   version=version)]


def _within(ts: datetime, periods: list[dict[str, Any]]) -> bool:
    stamp = ts.isoformat()
    return any(p["start"] <= stamp and (p["end"] is None or stamp < p["end"]) for p in periods)


def _audit(session: Session, model: str, settings: Any) -> dict[str, Any]:
    """The model's events, the whole chain verified against its signed checkpoints, and the newest
    checkpoint (seq, hash, signature): every report handed out is a copy of it held outside LeanOps."""
    from core import audit_checkpoints

    subject = f"model:{model}"
    total = audit.count_of_subject(session, subject=subject)
    newest = audit.of_subject(session, subject=subject, limit=AUDIT_EVENTS_MAX)
    check = audit_checkpoints.verify(session, settings)
    chain = check.result
    return {"checkpoint": check.latest, "subject": subject, "events_total": total, "truncated": total > len(newest),
            "events": [{"seq": e.seq, "ts": _iso(e.ts), "actor": e.actor, "action": e.action, "details": e.details,
                        "hash": e.hash} for e in reversed(newest)],
            "chain": chain.as_dict(), "missing": [] if total else [f"no audit events with subject {subject}"]}


# -- the report ----------------------------------------------------------------------------------

def _mlflow_version(registry: RegistryPort, model: str, version: int) -> dict[str, Any] | None:
    try:
        info = registry.version(model, version)
    except Exception:  # noqa: BLE001 - NotFound or an unavailable store: the identity section says so
        return None
    return {"name": info.name, "version": info.version, "run_id": info.run_id, "source": info.source,
            "status": info.status, "tags": info.tags}


def _plain(doc: Any) -> Any:
    """JSON values only (no NaN, numpy scalars or datetimes), as the canonical form will see them."""
    def fix(value: Any) -> Any:
        if isinstance(value, float) and value != value:
            return None
        if isinstance(value, dict):
            return {str(k): fix(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [fix(v) for v in value]
        return value

    return fix(json.loads(json.dumps(doc, default=str)))


def _labels_once(session: Session, store: DataStore, model: str, version: int
                 ) -> Callable[[], list[tuple[Any, ...]]]:
    """The version's labelled predictions, read when first asked and then kept: the live metrics and the
    late-label ledger both need every one, and on months of hourly labels each read is thousands of files."""
    from core.monitoring import performance

    return functools.cache(lambda: performance.labelled(session, model=model, version=version, store=store))


def build(factory: sessionmaker[Session], settings: Any, *, model: str, version: int,
          now: datetime | None = None) -> dict[str, Any]:
    """The report's content (reads only). NotFound when neither LeanOps nor MLflow knows the version."""
    if version < 1:
        raise InvalidInput(f"version {version} is not a model version number (1 or more)")
    now = now or utcnow()
    mlflow = _mlflow_version(settings.registry, model, version)
    with factory() as session:
        run = _run(session, model, version)
        if run is None and mlflow is None:
            known = runs.versions_of(session, model=model)
            raise NotFound(f"model {model!r} has no version {version}; its versions are: "
                           f"{', '.join(map(str, known)) or 'none'}")
        approvals = _approvals(session, model, version)
        labelled = _labels_once(session, settings.data_store, model, version)
        content = {
            "identity": _identity(run, mlflow, settings.registry, model, version, now),
            "model_card": _model_card(session, model, version),
            "training_data": _training_data(session, run, settings.data_store),
            "training_config": _training_config(run) | {"provenance": _provenance(session, model, version)},
            "evaluation": _evaluation(run),
            "gates": _gates(session, model, version),
            "approvals": approvals,
            "monitoring": _monitoring(session, settings.data_store, labelled, model, version,
                                      run.task if run else None, approvals["champion_periods"]),
            "audit": _audit(session, model, settings),
        }
        content["monitoring"]["shadow"] = _shadow(session, settings, model, version)
        content["monitoring"]["batch_runs"] = _batch_runs(session, model, version)
        evidence.add_sections(session, settings, content, run=run, model=model, version=version, now=now,
                              labelled=labelled)
    content = _plain(content)
    content["coverage"] = coverage.evaluate(content)  # opens the report: each regulation item → its evidence
    content["identity"]["report_sha256"] = report_hash(content)
    return content


def render_json(content: dict[str, Any]) -> bytes:
    return (json.dumps(content, indent=2, ensure_ascii=False, sort_keys=True) + "\n").encode()


def render_pdf(content: dict[str, Any]) -> bytes:
    """The same content as a PDF: real text, tables and the confusion-matrix or residual chart as an image. It
    cites the sha256 of the JSON file rendered from the same content (one snapshot, two forms)."""
    from core.compliance.pdf import render

    ident = content["identity"]
    return render(content, json_name=f"compliance-{ident['model']}-v{ident['version']}.json",
                  json_sha256=hashlib.sha256(render_json(content)).hexdigest())


@dataclass(frozen=True)
class Generated:
    model: str
    version: int
    format: str
    data: bytes
    sha256: str  # of the file's bytes
    report_sha256: str  # of the content (see canonical_bytes)
    missing: dict[str, list[str]]

    @property
    def file_name(self) -> str:
        return f"compliance-{self.model}-v{self.version}.{self.format}"


def generate(factory: sessionmaker[Session], settings: Any, *, actor: Actor, model: str, version: int,
             fmt: str) -> Generated:
    """Build and render a report, and record ``report.generated`` in the audit log."""
    if fmt not in FORMATS:
        raise InvalidInput(f"report format {fmt!r} is unknown; formats are: {', '.join(FORMATS)}")
    with transaction(factory) as session:
        require(session, actor, "read", f"model:{model}")
    content = build(factory, settings, model=model, version=version)
    data = render_pdf(content) if fmt == "pdf" else render_json(content)
    done = Generated(model, version, fmt, data, hashlib.sha256(data).hexdigest(),
                     content["identity"]["report_sha256"],
                     {name: section["missing"] for name, section in content.items() if section.get("missing")})
    with transaction(factory) as session:
        audit.record(session, actor, "report.generated", f"model:{model}",
                     {"version": version, "format": fmt, "sha256": done.sha256, "report_sha256": done.report_sha256})
    return done


def generate_pair(factory: sessionmaker[Session], settings: Any, *, actor: Actor, model: str,
                  version: int) -> tuple[Generated, Generated]:
    """The PDF and the JSON of one snapshot (the PDF cites the JSON's sha256); one ``report.generated`` event."""
    with transaction(factory) as session:
        require(session, actor, "read", f"model:{model}")
    content = build(factory, settings, model=model, version=version)
    missing = {name: section["missing"] for name, section in content.items() if section.get("missing")}
    as_json, as_pdf = render_json(content), render_pdf(content)
    pair = tuple(Generated(model, version, fmt, data, hashlib.sha256(data).hexdigest(),
                           content["identity"]["report_sha256"], missing)
                 for fmt, data in (("pdf", as_pdf), ("json", as_json)))
    with transaction(factory) as session:
        audit.record(session, actor, "report.generated", f"model:{model}",
                     {"version": version, "format": "pdf+json", "sha256": pair[0].sha256,
                      "json_sha256": pair[1].sha256, "report_sha256": pair[0].report_sha256})
    return pair[0], pair[1]


def _write_whole(out: Path, data: bytes) -> None:
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(out)


def write(factory: sessionmaker[Session], settings: Any, *, actor: Actor, model: str, version: int, fmt: str,
          out: Path) -> dict[str, Any]:
    """Generate a report into ``out`` (written whole, or not at all) → ``{path, format, sha256, …}``.

    A PDF comes with the JSON of the same snapshot beside it (``out`` with ``.json``), whose sha256 it cites.
    """
    out = Path(out)
    if out.is_dir():
        raise InvalidInput(f"--out {out} is a folder; give a file path")
    if not out.parent.is_dir():
        raise InvalidInput(f"--out {out}: the folder {out.parent} does not exist")
    extra: dict[str, Any] = {}
    if fmt == "pdf":
        done, beside = generate_pair(factory, settings, actor=actor, model=model, version=version)
        json_out = out.with_suffix(".json") if out.suffix != ".json" else out.with_name(out.name + ".json")
        _write_whole(json_out, beside.data)
        extra = {"json_path": str(json_out), "json_sha256": beside.sha256}
    else:
        done = generate(factory, settings, actor=actor, model=model, version=version, fmt=fmt)
    _write_whole(out, done.data)
    return {"path": str(out), "format": fmt, "sha256": done.sha256, "report_sha256": done.report_sha256,
            "model": model, "version": version, "bytes": len(done.data), "missing": done.missing, **extra}
