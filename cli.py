"""LeanOps from the terminal or CI: ``python cli.py COMMAND … [--json]``.

Exit codes: 0 done, 1 a check or gate said no (or the command lost a race), 2 bad input (one-line reason on
stderr). With ``--json`` every exit prints exactly one JSON document on stdout: the result, or
``{"error": …}`` beside the line on stderr. The CLI acts as the OS user (``cli:<name>``) with admin rights
and is audited like everyone else.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import signal
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

from core.errors import Conflict, IntegrityError, LeanOpsError, PolicyBlocked

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from core.settings import Settings

EXIT_OK, EXIT_NO, EXIT_BAD = 0, 1, 2


class Outcome:
    """A command's JSON document, plus whether a check said no (exit 1)."""

    def __init__(self, doc: Any, *, refused: bool = False, text: str | None = None) -> None:
        self.doc, self.refused, self.text = doc, refused, text


def _context() -> tuple[Settings, sessionmaker[Session]]:
    from core.settings import get_settings, quiet_mlflow_progress
    from db.session import make_engine, make_session_factory

    quiet_mlflow_progress()  # a command's stderr is for its errors, not MLflow's download bars
    settings = get_settings()
    return settings, make_session_factory(make_engine(settings.db_url))


# -- commands ------------------------------------------------------------------------------------

def cmd_init(args: argparse.Namespace) -> Outcome:
    from core.workspace.bootstrap import init_workspace

    settings, factory = _context()
    result = init_workspace(factory, settings, demo=args.demo)
    lines = [f"workspace ready at {result.home}"]
    if result.admin_password:
        lines.append(f"admin user: {result.admin_user}  password: {result.admin_password}  (shown once: the first "
                     "login asks for a new one)")
    elif result.admin_user:
        lines.append(f"admin user: {result.admin_user} (password from LEANOPS_ADMIN_PASSWORD)")
    lines += [f"demo data: {p}" for p in result.demo_files]
    lines.append(f"audit checkpoint public key: {result.audit_public_key} (also in {settings.home}/audit.pub)")
    doc = result.as_dict()
    from core.workspace.identity import workspace_id  # what `make run` expects its own API to answer

    doc["workspace_id"] = workspace_id(settings)
    lines.append(f"workspace id: {doc['workspace_id']}")
    # MLflow's schema made or migrated once, now: before a shared server's workers, and before `make run`
    # starts the API and the demo build together on a fresh SQLite store (both would create its tables)
    from core.platform import mlflow_store

    mlflow_store.prepare(mlflow_store.store_for(settings))
    if args.demo:
        from core.workspace.demo import seed_model, seed_traffic

        doc["demo_model"] = seed_model(factory, settings)
        if doc["demo_model"]["trained"]:
            version = doc["demo_model"]["aliases"]["champion"]
            lines.append(f"demo model: churn v{version} trained and promoted (F1 {doc['demo_model']['f1']})")
            doc["demo_traffic"] = seed_traffic(factory, settings, version=version)
            lines.append(f"demo traffic: {doc['demo_traffic']['predictions']} logged predictions with feedback; "
                         f"drift check #{doc['demo_traffic']['drift_check']} flags "
                         f"{', '.join(doc['demo_traffic']['drifted']) or 'nothing'}")
    return Outcome(doc, text="\n".join(lines))


def cmd_audit_verify(args: argparse.Namespace) -> Outcome:
    from core import audit_checkpoints
    from core.actors import cli_actor

    settings, factory = _context()
    check = audit_checkpoints.verify_and_record(factory, settings, actor=cli_actor())
    return Outcome(check.as_dict(), refused=not check.ok,
                   text=("OK: " if check.ok else "BROKEN: ") + check.result.reason)


def cmd_audit_checkpoint(args: argparse.Namespace) -> Outcome:
    from core import audit_checkpoints
    from core.actors import cli_actor

    settings, factory = _context()
    cp = audit_checkpoints.write(factory, settings, actor=cli_actor())
    doc = cp.as_dict() | {"log": str(audit_checkpoints.log_path(settings))}
    return Outcome(doc, text=f"checkpoint {cp.n}: event {cp.seq} {cp.hash} signed at {cp.time}\n"
                             f"signature {cp.signature}")


def cmd_user_add(args: argparse.Namespace) -> Outcome:
    from core.accounts import auth
    from core.actors import cli_actor
    from core.platform.database import transaction

    _, factory = _context()
    password = sys.stdin.readline().rstrip("\n")
    with transaction(factory) as session:
        user = auth.create_user(session, actor=cli_actor(), username=args.name, role=args.role, password=password,
                                must_change_password=not args.keep_password)
        doc = {"username": user.username, "role": user.role}
    return Outcome(doc, text=f"user {doc['username']} ({doc['role']}) created")


def cmd_token_create(args: argparse.Namespace) -> Outcome:
    from core.accounts import auth
    from core.actors import cli_actor
    from core.platform.database import transaction

    _, factory = _context()
    with transaction(factory) as session:
        plain, row = auth.create_token(session, actor=cli_actor(), role=args.role, name=args.name or "",
                                       owner=args.owner, expires_days=args.expires_days)
        doc = {"token": plain, "role": row.role, "name": row.name, "owner": args.owner,
               "expires_at": row.expires_at.isoformat() if row.expires_at else None}
    expiry = f"expires {doc['expires_at']}" if doc["expires_at"] else "never expires"
    return Outcome(doc, text=f"{plain}\n(role {doc['role']}, name {doc['name']}, owner {args.owner or 'none'}, "
                             f"{expiry}; shown only now)")


def cmd_user_unlock(args: argparse.Namespace) -> Outcome:
    from core.accounts import auth
    from core.actors import cli_actor
    from core.platform.database import transaction

    _, factory = _context()
    with transaction(factory) as session:
        failures = auth.unlock(session, actor=cli_actor(), username=args.name)
    return Outcome({"username": args.name, "failures_cleared": failures},
                   text=f"{args.name} may sign in again ({failures} failed attempts cleared)")


def cmd_rotate_secret_key(args: argparse.Namespace) -> Outcome:
    from core import secrets
    from core.actors import cli_actor

    settings, factory = _context()
    rotation = secrets.rotate_key(factory, settings, actor=cli_actor())
    doc = rotation.as_dict()
    text = (f"sealed {len(rotation.sources)} source(s) and {len(rotation.channels)} alert channel(s) with "
            + (f"a new key in {rotation.key}" if rotation.generated else "the first key of LEANOPS_SECRET_KEY; "
               "remove the old keys from it now"))
    return Outcome(doc, text=text)


def cmd_worker(args: argparse.Namespace) -> Outcome:
    from jobs import scheduler

    settings, factory = _context()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    from core.platform.leases import LeaseHeld

    try:
        rt = scheduler.start(settings, factory, run_schedules=not args.jobs_only, slots=args.slots)
    except LeaseHeld as exc:  # holder is "host:pid:id"
        raise LeaseHeld(f"another scheduler is already running, so this worker will not start: {exc}. Run "
                        "`cli.py worker --jobs-only` for more job runners, or stop that process first") from None
    print(f"worker {rt.worker} running (schedules: {rt.run_schedules}); Ctrl+C to stop", file=sys.stderr, flush=True)
    done.wait()
    scheduler.stop()
    return Outcome({"worker": rt.worker, "stopped": True}, text="worker stopped")


def cmd_dataset_add(args: argparse.Namespace) -> Outcome:
    from pathlib import Path

    from core.actors import cli_actor
    from core.data import datasets
    from core.data.tables import TableLimits
    from core.platform.database import transaction

    settings, factory = _context()
    path = Path(args.file)
    with transaction(factory) as session:
        reg = datasets.register(session, actor=cli_actor(), name=args.name, data=path, filename=path.name,
                                store=settings.data_store, settings=settings, source=f"cli:{path.name}",
                                description=args.description or "", max_bytes=settings.max_upload_mb * 2**20,
                                limits=TableLimits.of(settings))
    failed = [f"  ✗ {c['check']} {c['column'] or ''}: {c['observed']} (expected {c['expected']})"
              for c in reg.certificate.failed]
    return Outcome(reg.as_dict(), text="\n".join([reg.message, *failed]))


def cmd_dataset_list(args: argparse.Namespace) -> Outcome:
    from core.data import datasets

    _, factory = _context()
    with factory() as session:
        if not args.name:
            doc = [{"name": d.name, "versions": d.versions, "latest_rows": d.latest_rows,
                    "latest_passed": d.latest_passed, "updated_at": d.updated_at.isoformat()}
                   for d in datasets.list_datasets(session)]
            lines = [f"{d['name']}: {d['versions']} version(s), latest {d['latest_rows']} rows, "
                     f"certificate {'passed' if d['latest_passed'] else 'failed'}" for d in doc]
            return Outcome(doc, text="\n".join(lines) or "no datasets yet")
        datasets.dataset_row(session, name=args.name)  # NotFound lists the datasets there are
        default = datasets.default_number(session, name=args.name)
        views, offset = [], 0
        while page := datasets.list_versions(session, name=args.name, limit=500, offset=offset):
            views += page
            offset += len(page)
    found: list[dict[str, Any]] = [{"version": v.version, "sha256": v.sha256, "rows": v.rows, "columns": v.columns,
            "certificate_passed": v.certificate_passed, "source": v.source, "created_by": v.created_by,
            "created_at": v.created_at.isoformat(), "deprecated": v.deprecated,
            "deprecation_reason": v.deprecation_reason, "default": v.version == default} for v in views]
    lines = [f"{args.name}:{d['version']}  {d['sha256'][:12]}  {d['rows']} rows  "
             f"{'passed' if d['certificate_passed'] else 'FAILED'}  {d['created_by']}  {d['created_at'][:16]}"
             + ("  DEPRECATED: " + str(d["deprecation_reason"]) if d["deprecated"] else "")
             + ("  (default)" if d["default"] else "") for d in found]
    return Outcome(found, text="\n".join(lines))


def cmd_dataset_deprecate(args: argparse.Namespace) -> Outcome:
    from core.actors import cli_actor
    from core.data import datasets
    from core.platform.database import transaction

    _, factory = _context()
    with transaction(factory) as session:
        view = datasets.deprecate(session, actor=cli_actor(), name=args.name, version=args.version,
                                  reason=args.reason)
        default = datasets.default_number(session, name=args.name)
    doc = {"name": view.name, "version": view.version, "deprecated": True, "reason": view.deprecation_reason,
           "default_version": default}
    return Outcome(doc, text=f"{view.ref} deprecated: {view.deprecation_reason}; defaults now use "
                             + (f"{view.name}:{default}" if default else "no version (name one explicitly)"))


def cmd_dataset_restore(args: argparse.Namespace) -> Outcome:
    from core.actors import cli_actor
    from core.data import datasets
    from core.platform.database import transaction

    _, factory = _context()
    with transaction(factory) as session:
        view = datasets.restore(session, actor=cli_actor(), name=args.name, version=args.version)
        default = datasets.default_number(session, name=args.name)
    doc = {"name": view.name, "version": view.version, "deprecated": False, "default_version": default}
    return Outcome(doc, text=f"{view.ref} restored; defaults use "
                             + (f"{view.name}:{default}" if default else "no version (name one explicitly)"))


def cmd_train(args: argparse.Namespace) -> Outcome:
    from core.actors import cli_actor
    from core.errors import InvalidInput
    from core.promotion.registration import train

    settings, factory = _context()
    params = {}
    for item in args.param or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"--param {item!r} is not KEY=VALUE (e.g. --param n_estimators=200)")
        params[key.strip()] = value.strip()
    spec = {"dataset": args.dataset, "target": args.target, "model": args.model, "params": params,
            "task": args.task, "holdout": args.holdout, "seed": args.seed, "sensitive": args.sensitive,
            "model_name": args.model_name, "exclude": args.exclude or [],
            "allow_failed_certificate": args.allow_failed_certificate,
            "allow_schema_change": args.allow_schema_change}
    if args.search:
        spec["search"] = {"method": args.search, "candidates": args.candidates, "folds": args.folds}
    actor = cli_actor()
    last = [""]

    def progress(fraction: float, stage: str) -> None:
        if stage != last[0] and not args.json:
            print(f"[{fraction:4.0%}] {stage}", file=sys.stderr, flush=True)
        last[0] = stage

    def log(line: str) -> None:  # with --json, stderr carries only a failure's one-line reason
        if not args.json:
            print(line, file=sys.stderr, flush=True)

    result = train(factory, settings, spec, actor=actor, progress=progress, log=log)
    metrics = ", ".join(f"{k} {v:.4f}" for k, v in result["metrics"].items())
    doc = {k: result[k] for k in ("run_id", "model_name", "model_version", "metrics", "gates")}
    return Outcome(doc, text=f"registered {result['model_name']} version {result['model_version']} "
                             f"(MLflow run {result['run_id']})\n{metrics}")


def cmd_model_import(args: argparse.Namespace) -> Outcome:
    from pathlib import Path

    from core.actors import cli_actor
    from core.errors import InvalidInput
    from core.promotion.imports import import_model
    from core.training import imports

    settings, factory = _context()
    claimed = None
    if args.claimed_metrics:
        try:
            claimed = json.loads(args.claimed_metrics)
        except ValueError:
            raise InvalidInput("--claimed-metrics is not JSON (e.g. '{\"f1\": 0.93}')") from None
    if args.from_run:
        file_name, data = imports.run_artifact(settings, run_id=args.from_run, path=args.path)
    else:
        path = Path(args.path)
        if not path.is_file():
            raise InvalidInput(f"{args.path}: no such file")
        if path.stat().st_size > settings.max_upload_mb * 1024 * 1024:
            raise InvalidInput(f"{args.path} refused: {path.stat().st_size / 1e6:.1f} MB is over the upload limit "
                               f"of {settings.max_upload_mb} MB (LEANOPS_MAX_UPLOAD_MB)")
        file_name, data = path.name, path.read_bytes()

    def log(line: str) -> None:  # with --json, stderr carries only a failure's one-line reason
        if not args.json:
            print(line, file=sys.stderr, flush=True)

    result = import_model(factory, settings, actor=cli_actor(), log=log, model=args.name, file_name=file_name,
                          data=data, dataset=args.dataset, target=args.target, sensitive=args.sensitive,
                          description=args.description, claimed_metrics=claimed)
    doc = {k: result[k] for k in ("model", "version", "format", "sha256", "metrics", "gates", "estimator",
                                  "refittable", "dataset", "claimed_metrics", "provenance", "run_id")}
    gates = result["gates"]
    verdict = "passed every gate (challenger)" if gates["passed"] else "failed gates: " + ", ".join(
        c["name"] for c in gates["checks"] if not c["passed"])
    return Outcome(doc, text=f"registered {result['model']} version {result['version']} ({result['format']}, "
                             f"{result['estimator']}): {verdict}\n{result['provenance']}\n"
                             + ", ".join(f"{k} {v:.4f}" for k, v in result["metrics"].items() if v is not None))


def cmd_promote(args: argparse.Namespace) -> Outcome:
    from core.actors import cli_actor
    from core.promotion import gates, moves

    settings, factory = _context()
    try:
        change = moves.promote(factory, settings, actor=cli_actor(), model=args.model, version=args.version,
                               reason=args.reason or "", force=args.force)
    except gates.GatesFailed as exc:
        doc = {"promoted": False, **exc.result.as_dict()}
        return Outcome(doc, refused=True, text=f"blocked: {exc}")
    doc = {"promoted": True, "model": change.model, "from_version": change.from_version,
           "to_version": change.to_version, "forced": change.forced, **(change.checks or {"checks": []})}
    doc["passed"] = doc.pop("passed", True)
    return Outcome(doc, text=f"{change.model}@champion: v{change.from_version} → v{change.to_version}"
                             + (" (FORCED)" if change.forced else ""))


def cmd_rollback(args: argparse.Namespace) -> Outcome:
    from core.actors import cli_actor
    from core.promotion import moves

    settings, factory = _context()
    change = moves.rollback(factory, settings, actor=cli_actor(), model=args.model, reason=args.reason or "")
    doc = {"model": change.model, "from_version": change.from_version, "to_version": change.to_version}
    return Outcome(doc, text=f"{change.model}@champion: v{change.from_version} → v{change.to_version}")


def cmd_shadow(args: argparse.Namespace) -> Outcome:
    from core.actors import cli_actor
    from core.monitoring import shadow_comparison

    settings, factory = _context()
    with factory() as session:
        doc = shadow_comparison.compare(session, settings, actor=cli_actor(), model=args.model).as_dict()
    score = (f"{doc['metric']} champion {doc['champion_score']} vs challenger {doc['challenger_score']}, "
             f"p = {doc['p_value']}" if doc["labelled"] else "no labels yet")
    if doc["champion_estimate"] or doc["challenger_estimate"]:
        champion, challenger = (f"{e['value']} [{e['lower']}, {e['upper']}]" if e else "none"
                                for e in (doc["champion_estimate"], doc["challenger_estimate"]))
        score += f"; estimated {doc['metric']} without labels: champion {champion} vs challenger {challenger}"
    return Outcome(doc, text=f"{args.model}: champion v{doc['champion']} vs challenger v{doc['challenger']}: "
                             f"{doc['compared']} compared, agreement {doc['agreement']}, {doc['labelled']} labelled "
                             f"({score}); decision: {doc['decision']} — {'; '.join(doc['reasons'])}")


def cmd_drift(args: argparse.Namespace) -> Outcome:
    from pathlib import Path

    from core.monitoring import prestart

    if Path(args.current).is_file():  # the model's process imports scikit-learn while this one imports the rest
        prestart.start()
    from core.actors import cli_actor
    from core.monitoring import checks

    settings, factory = _context()
    path = Path(args.current)
    check = checks.run_check(factory, settings, actor=cli_actor(), model=args.model, version=args.version,
                             source="upload", current=path, filename=path.name, threshold=args.threshold,
                             report=not args.no_report, report_now=args.report, parallel_outputs=True)
    columns = {name: {k: col.get(k) for k in ("method", "statistic", "p_value", "psi", "drifted", "importance")}
               | {k: col[k] for k in ("distance", "new_categories", "importance_rank") if col.get(k)}
               for name, col in check.columns.items()}
    verdict = {"drifted": check.drift_detected, "reasons": [r["text"] for r in check.verdict.get("reasons", [])],
               "rules": [r["rule"] for r in check.verdict.get("reasons", [])],
               "not_counted": check.verdict.get("not_counted", []), "ranked": check.drifted}
    report = check.report_path if check.report_path and Path(check.report_path).is_file() else None
    doc = {"drift_detected": check.drift_detected, "drift_share": check.drift_share, "verdict": verdict,
           "estimated_performance": check.estimated_performance, "columns": columns,
           "model": check.model, "version": check.version, "check_id": check.id, "rows": check.current_rows,
           "predictions": {k: check.predictions.get(k) for k in ("output", "method", "statistic", "p_value", "psi",
                                                                 "drifted")}
           if check.predictions else None, "report": report,
           "report_pending": bool(check.report_path) and report is None}
    lines = [f"{check.model} v{check.version} vs {path.name}: data drift "
             f"{'DETECTED' if check.drift_detected else 'not detected'} (check #{check.id}); "
             f"{check.drift_share:.0%} of columns drifted"]
    lines += [f"  because {text}" for text in verdict["reasons"]]
    lines += [f"  not counted: {text}" for text in verdict["not_counted"]]
    lines += [f"  estimated {metric} {e['value']:.3f} [{e['lower']:.3f}, {e['upper']:.3f}]"
              + (f" (holdout {e['reference']:.3f})" if e.get("reference") is not None else "")
              for metric, e in check.estimated_performance.items()]
    lines += [f"  {'✗' if c['drifted'] else ' '} {name}: {c['method']} {c['statistic']:.4g}"
              + (f", p {c['p_value']:.3g}" if c.get("p_value") is not None else "")
              + (f", PSI {c['psi']:.3g}" if c.get("psi") is not None else "")
              + (f", {c['importance']:.0%} of importance" if c.get("importance") is not None else "")
              for name, c in sorted(columns.items(), key=lambda item: -(item[1].get("importance") or 0))
              if c["statistic"] is not None]
    return Outcome(doc, refused=check.drift_detected, text="\n".join(lines))


def cmd_report(args: argparse.Namespace) -> Outcome:
    from pathlib import Path

    from core.actors import cli_actor
    from core.compliance import reports

    settings, factory = _context()
    doc = reports.write(factory, settings, actor=cli_actor(), model=args.model, version=args.version,
                        fmt=args.format, out=Path(args.out))
    gaps = sum(len(notes) for notes in doc["missing"].values())
    return Outcome(doc, text=f"wrote {doc['path']} ({doc['format']}, {doc['bytes']:,} bytes, sha256 {doc['sha256']})"
                             + (f"; {gaps} missing item(s) stated in the report" if gaps else ""))


def cmd_report_verify(args: argparse.Namespace) -> Outcome:
    from pathlib import Path

    from core.errors import InvalidInput
    from core.promotion import test_reports

    path = Path(args.file)
    if not path.is_file():
        raise InvalidInput(f"{path} is not a file")
    if args.public_key:
        public = Path(args.public_key).read_text().strip()
    else:
        settings, _ = _context()
        public = test_reports.workspace_public_key(settings)
    found = test_reports.verify_bytes(path.read_bytes(), public_key=public)
    return Outcome(found.as_dict(), refused=not found.ok,
                   text=("OK: " if found.ok else "FAILED: ") + found.reason
                   + (f" (signed by {', '.join(found.signed_by)}, {found.signed_at})" if found.ok else ""))


def cmd_model_list(args: argparse.Namespace) -> Outcome:
    from core.compliance import inventory

    settings, factory = _context()
    with factory() as session:
        rows = [r.as_dict() for r in inventory.list_models(session, settings, search=args.search or "",
                                                           sort=args.sort)]
    lines = [f"{r['model']}: owner {r['owner'] or 'none'}, {r['risk_tier']} risk, {r['status']}, next review "
             f"{r['next_review_due'] or 'none due'}{' (OVERDUE)' if r['overdue'] else ''}, {r['open_alerts']} open "
             "alert(s)" for r in rows]
    return Outcome(rows, text="\n".join(lines) or "no models")


def cmd_model_review(args: argparse.Namespace) -> Outcome:
    from core.actors import cli_actor
    from core.platform.database import transaction
    from core.registry import stewardship

    settings, factory = _context()
    with transaction(factory) as session:
        review = stewardship.record_review(session, settings, actor=cli_actor(), model=args.model,
                                          outcome=args.outcome, notes=args.notes)
        doc = review.as_dict()
    return Outcome(doc, text=f"review {doc['id']} of {doc['model']} recorded ({doc['outcome']}); next due "
                             f"{doc['next_due'] or 'never (no interval for this tier)'}")


def cmd_model_profile(args: argparse.Namespace) -> Outcome:
    from core.actors import cli_actor
    from core.platform.database import transaction
    from core.registry import stewardship

    settings, factory = _context()
    with transaction(factory) as session:
        old = stewardship.profile(session, model=args.model)
        found = stewardship.save_profile(
            session, actor=cli_actor(), model=args.model,
            owner=old.owner if args.owner is None else args.owner,
            intended_use=old.intended_use if args.intended_use is None else args.intended_use,
            out_of_scope_use=old.out_of_scope_use if args.out_of_scope_use is None else args.out_of_scope_use,
            tags=old.tags if args.tags is None else [t for t in args.tags.split(",")])
        doc = {"model": args.model, **found.as_dict()}
    return Outcome(doc, text=f"inventory entry of {args.model} saved (owner {doc['owner'] or 'none'})")


def cmd_predictions_export(args: argparse.Namespace) -> Outcome:
    from datetime import UTC, datetime
    from pathlib import Path

    from core.actors import cli_actor
    from core.errors import InvalidInput
    from core.platform.prediction_log.export import export

    def when(flag: str, value: str | None) -> datetime | None:
        if value is None:
            return None
        try:
            at = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidInput(f"{flag} {value!r} is not an ISO date or time, e.g. 2026-11-30 or "
                               "2026-11-30T14:00:00+00:00") from None
        return at if at.tzinfo is not None else at.replace(tzinfo=UTC)  # a time without a zone is UTC

    settings, factory = _context()
    doc = export(factory, settings.data_store, actor=cli_actor(), model=args.model,
                 out=Path(args.out), since=when("--since", args.since),
                 until=when("--until", args.until))
    return Outcome(doc, text=f"wrote {doc['rows']:,} prediction(s) of {args.model} to {doc['path']}")


def cmd_score(args: argparse.Namespace) -> Outcome:
    from pathlib import Path

    from core.actors import cli_actor
    from core.errors import InvalidInput
    from core.serving import batch, batch_io, batch_parts

    settings, factory = _context()
    if sum(x is not None for x in (args.input, args.dataset, args.source)) != 1:
        raise InvalidInput("name one input: --input FILE, --dataset NAME[:VERSION] or --source NAME:SQL")
    if args.version is not None and args.alias is not None:
        raise InvalidInput("score with --version N or --alias ALIAS, not both")
    if batch_parts.is_s3(args.input) or batch_parts.is_s3(args.out):
        if not (batch_parts.is_s3(args.input) and batch_parts.is_s3(args.out)):
            raise InvalidInput("an S3 input is scored into an S3 prefix: --input s3://bucket/prefix/ "
                               "--out s3://bucket/prefix/ (both on S3)")
        scored = batch_parts.score_s3(factory, settings, actor=cli_actor(), model=args.model, source=args.input,
                                      out=args.out, alias=args.alias, version=args.version,
                                      id_column=args.id_column, explain=args.explain,
                                      chunk_rows=max(args.chunk_rows, 1))
        return Outcome(scored.as_dict(), text=f"scored {scored.rows:,} rows of {args.input} with {scored.model} "
                                              f"v{scored.version} in {scored.seconds:.1f} s: {scored.out} "
                                              f"(batch {scored.batch_id})")
    output = batch_io.FileOutput(Path(args.out))
    try:
        if args.source is not None:
            source = batch.sql_source(factory, settings, actor=cli_actor(), source=args.source,
                                      chunk_rows=max(args.chunk_rows, 1))
        else:
            source = batch.open_source(factory, settings, path=Path(args.input) if args.input else None,
                                       dataset=args.dataset, chunk_rows=max(args.chunk_rows, 1))
    except BaseException:
        output.discard()
        raise
    scored = batch.score(factory, settings, actor=cli_actor(), model=args.model, source=source, output=output,
                         alias=args.alias, version=args.version, id_column=args.id_column, explain=args.explain)
    return Outcome(scored.as_dict(), text=f"scored {scored.rows:,} rows of {source.label} with {scored.model} "
                                          f"v{scored.version} in {scored.seconds:.1f} s: {scored.out} "
                                          f"(batch {scored.batch_id})")


def cmd_serve(args: argparse.Namespace) -> Outcome:
    from urllib.parse import urlsplit

    import uvicorn

    from core.platform.database import migrate
    from core.settings import get_settings

    settings = get_settings()
    default = urlsplit(settings.api_url)
    host, port = args.host or default.hostname or "127.0.0.1", args.port or default.port or 8000
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    migrate(settings.db_url)  # once, before any worker starts
    # Each process (one, or --workers N sharing the port) builds its own app from the environment
    # (api.app.serve_process): micro-batching, the model cache with its hot reload, and the prediction
    # log writer with its own journal segment live in it. SIGTERM/Ctrl+C stop them cleanly: requests
    # in flight finish and every acknowledged prediction is written first.
    uvicorn.run("api.app:serve_process", factory=True, workers=args.workers if args.workers > 1 else None,
                host=host, port=port, log_level="info", access_log=args.access_log, timeout_graceful_shutdown=30)
    return Outcome({"host": host, "port": port, "stopped": True}, text="API stopped")


# -- parsing -------------------------------------------------------------------------------------

def _workers(text: str) -> int:
    """``serve --workers``: a whole number of processes, 1 to 64."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= 64:
        raise argparse.ArgumentTypeError(f"{value} is not between 1 and 64")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse, keeping the reason of a refused command line (``main`` prints it as JSON under ``--json``)."""

    refused: str | None = None

    def error(self, message: str) -> NoReturn:
        _Parser.refused = message  # subparsers are instances of this class too: one place to look
        super().error(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="cli.py", description="LeanOps command line")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, fn: Callable[[argparse.Namespace], Outcome], help_: str,
                parent: Any = sub) -> argparse.ArgumentParser:
        p = parent.add_parser(name, help=help_)
        p.add_argument("--json", action="store_true", help="print exactly one JSON document")
        p.set_defaults(fn=fn)
        return p

    p = command("init", cmd_init, "create or upgrade the workspace and DB")
    p.add_argument("--demo", action="store_true", help="add the demo workspace")

    command("rotate-secret-key", cmd_rotate_secret_key,
            "seal every stored secret under a new key (workspace key file) or LEANOPS_SECRET_KEY's first key")

    audit_p = sub.add_parser("audit", help="audit log").add_subparsers(dest="audit_command", required=True)
    command("verify", cmd_audit_verify, "check the audit hash chain and its signed checkpoints", audit_p)
    command("checkpoint", cmd_audit_checkpoint, "sign and write a checkpoint of the chain's head now", audit_p)

    user_p = sub.add_parser("user", help="accounts").add_subparsers(dest="user_command", required=True)
    p = command("add", cmd_user_add, "add an account (password from stdin; its first login must replace it)",
                user_p)
    p.add_argument("name")
    p.add_argument("--role", required=True)
    p.add_argument("--keep-password", action="store_true",
                   help="the account's own person typed this password: no change asked at the first login")
    p = command("unlock", cmd_user_unlock, "lift an account's login block (failed-login backoff)", user_p)
    p.add_argument("name")

    token_p = sub.add_parser("token", help="API tokens").add_subparsers(dest="token_command", required=True)
    p = command("create", cmd_token_create, "create an API token (shown only here)", token_p)
    p.add_argument("--role", required=True)
    p.add_argument("--name")
    p.add_argument("--owner", required=True, metavar="USER",
                   help="the existing account the token acts for (required: a token is a person's; never above "
                        "their role; dies with their deactivation)")
    p.add_argument("--expires-days", type=int, default=90, help="days until it expires (default 90; 0: never)")

    dataset_p = sub.add_parser("dataset", help="versioned datasets").add_subparsers(dest="dataset_command",
                                                                                  required=True)
    p = command("add", cmd_dataset_add, "register a CSV or Parquet file as the next version of NAME", dataset_p)
    p.add_argument("name")
    p.add_argument("file")
    p.add_argument("--description", help="what this version is")
    p = command("list", cmd_dataset_list, "datasets, or one dataset's versions", dataset_p)
    p.add_argument("name", nargs="?")
    p = command("deprecate", cmd_dataset_deprecate, "a version no default picks any more (training, retrain, "
                "scoring)", dataset_p)
    p.add_argument("name")
    p.add_argument("version", type=int)
    p.add_argument("--reason", required=True, help="what is wrong with the version (audited)")
    p = command("restore", cmd_dataset_restore, "undo a deprecation", dataset_p)
    p.add_argument("name")
    p.add_argument("version", type=int)

    p = command("train", cmd_train, "run the training pipeline now and register a model version")
    p.add_argument("--dataset", required=True, help="NAME or NAME:VERSION (NAME: the newest version whose "
                   "certificate passed and that is not deprecated)")
    p.add_argument("--target", required=True, help="the column to predict")
    p.add_argument("--model", default="random_forest",
                   help="linear | random_forest | hist_gradient_boosting | xgboost | lightgbm | dummy "
                        "(default random_forest)")
    p.add_argument("--param", action="append", metavar="K=V", help="a hyperparameter, repeatable")
    p.add_argument("--task", default="auto", choices=["auto", "classification", "regression"])
    p.add_argument("--sensitive", help="a column to measure fairness on")
    p.add_argument("--model-name", help="registered model name (default: the dataset's name)")
    p.add_argument("--exclude", action="append", metavar="COL", help="leave a column out, repeatable")
    p.add_argument("--holdout", type=float, default=0.2, help="share of rows held out for evaluation")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--search", choices=["grid", "random"], help="hyperparameter search before the final fit")
    p.add_argument("--candidates", type=int, default=8, help="search candidates")
    p.add_argument("--folds", type=int, default=3, help="search cross-validation folds")
    p.add_argument("--allow-failed-certificate", action="store_true",
                   help="train even if the dataset version failed its quality certificate")
    p.add_argument("--allow-schema-change", action="store_true",
                   help="confirm that this version's input columns differ from the model's newest version's")

    p = command("promote", cmd_promote, "move alias champion to VERSION if every gate passes (exit 1 if not)")
    p.add_argument("model")
    p.add_argument("version", type=int)
    p.add_argument("--reason")
    p.add_argument("--force", action="store_true", help="admin override of failed gates; needs --reason")

    p = command("rollback", cmd_rollback, "move alias champion back to the previous champion")
    p.add_argument("model")
    p.add_argument("--reason")

    p = command("shadow", cmd_shadow, "the champion/challenger shadow comparison and the policy's decision")
    p.add_argument("model")

    p = command("drift", cmd_drift, "compare a batch with the champion's training data (exit 1 on drift)")
    p.add_argument("model")
    p.add_argument("--current", required=True, metavar="FILE", help="the batch: a CSV or Parquet file")
    p.add_argument("--threshold", type=float, metavar="P", help="p-value below which a tested column drifts "
                   "(default: the model's drift.p_value in policies.yaml)")
    p.add_argument("--version", type=int, help="compare with this version instead of the champion")
    p.add_argument("--report", action="store_true", help="wait for the Evidently HTML report (built after the "
                   "verdict; without this flag a worker builds it and the Drift page shows it when ready)")
    p.add_argument("--no-report", action="store_true", help="make no Evidently HTML report at all")

    # `report verify FILE` beside `report MODEL VERSION`: main() routes the first to this command
    p = command("report-verify", cmd_report_verify, "check a signed test report offline (exit 1 when changed or "
                "signed by another key); also: report verify FILE")
    p.add_argument("file")
    p.add_argument("--public-key", metavar="FILE", help="the signer's public key (ed25519:<base64>; default: this "
                   "workspace's audit key)")

    p = command("report", cmd_report, "write the compliance report of a model version (PDF or JSON); "
                "report verify FILE checks a signed test report")
    p.add_argument("model")
    p.add_argument("version", type=int)
    p.add_argument("--format", required=True, choices=["pdf", "json"])
    p.add_argument("--out", required=True, help="file to write")

    predictions_p = sub.add_parser("predictions", help="the prediction log").add_subparsers(
        dest="predictions_command", required=True)
    p = command("export", cmd_predictions_export, "write the logged predictions of MODEL to a Parquet or CSV file",
                predictions_p)
    p.add_argument("model")
    p.add_argument("--since", metavar="ISO", help="from this time on (inclusive; UTC unless a zone is given)")
    p.add_argument("--until", metavar="ISO", help="up to this time (exclusive)")
    p.add_argument("--out", required=True, metavar="FILE", help="FILE.parquet or FILE.csv")

    p = command("score", cmd_score, "batch scoring: every row of a file, dataset or query scored into FILE")
    p.add_argument("model")
    p.add_argument("--input", metavar="FILE", help="a CSV or Parquet file, or Parquet on S3 (s3://bucket/prefix/: "
                   "every object there, scored partition by partition, on the Dask cluster of "
                   "LEANOPS_DASK_ADDRESS when set)")
    p.add_argument("--dataset", metavar="NAME[:VERSION]", help="a dataset version (default: its trusted default)")
    p.add_argument("--source", metavar="NAME:SQL", help="a query on a configured read-only SQL source")
    p.add_argument("--out", required=True, metavar="FILE", help="FILE.parquet or FILE.csv (appears only when done); "
                   "for an S3 input, s3://bucket/prefix/ (a folder of parts per run, complete once its _SUCCESS "
                   "is there)")
    p.add_argument("--version", type=int, help="score with this version")
    p.add_argument("--alias", help="score with the version this alias names (default champion)")
    p.add_argument("--id-column", metavar="COL", help="write only this column beside the predictions; it also "
                   "identifies the rows in the prediction log (feedback by id)")
    p.add_argument("--explain", action="store_true", help="add shap_<column> contributions and shap_base")
    p.add_argument("--chunk-rows", type=int, default=100_000, metavar="N",
                   help="rows scored at a time (memory is bounded by the chunk; default 100000)")

    p = command("serve", cmd_serve, "start the HTTP API (predictions, metrics, webhooks)")
    p.add_argument("--host", help="address to listen on (default: from LEANOPS_API_URL, 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default: from LEANOPS_API_URL, 8000)")
    p.add_argument("--access-log", action="store_true", help="log every request")
    p.add_argument("--workers", type=_workers, default=1, metavar="N",
                   help="processes serving on the one port, each with its own model cache and log writer "
                        "(default 1: one process micro-batches every concurrent request together, the least CPU "
                        "per prediction; more help only when CPUs sit idle)")

    model_p = sub.add_parser("model", help="registered models").add_subparsers(dest="model_command", required=True)
    p = command("import", cmd_model_import, "import a model trained elsewhere (skops, XGBoost JSON/UBJ, LightGBM "
                "text; never pickle), evaluate it on a certified dataset version and register it", model_p)
    p.add_argument("name", help="the registered model name")
    p.add_argument("path", help="the model file (with --from-run: its artifact path in that MLflow run)")
    p.add_argument("--dataset", required=True, help="NAME or NAME:VERSION whose holdout LeanOps evaluates it on")
    p.add_argument("--target", required=True, help="the column the model predicts")
    p.add_argument("--sensitive", help="a column to report fairness by")
    p.add_argument("--description", help="what this model is")
    p.add_argument("--from-run", metavar="RUN_ID", help="take PATH from this run of the workspace's MLflow")
    p.add_argument("--claimed-metrics", metavar="JSON", help="metrics the notebook reported (shown, never gated)")
    p = command("list", cmd_model_list, "the model inventory: owner, risk tier, champion, reviews, open alerts",
                model_p)
    p.add_argument("--search", help="only models whose name, owner, tier, tags or uses contain this text")
    p.add_argument("--sort", default="model", help="model | owner | risk_tier | next_review_due | open_alerts | "
                   "last_validation (default model)")
    p = command("review", cmd_model_review, "record a periodic review of MODEL (approver; audited)", model_p)
    p.add_argument("model")
    p.add_argument("--outcome", required=True, choices=["continue", "retrain", "retire"])
    p.add_argument("--notes", required=True, help="what was looked at and why the outcome")
    p = command("profile", cmd_model_profile, "set MODEL's inventory entry (owner account, uses, tags)", model_p)
    p.add_argument("model")
    p.add_argument("--owner", help="a user account")
    p.add_argument("--intended-use")
    p.add_argument("--out-of-scope-use")
    p.add_argument("--tags", help="comma-separated")

    p = command("worker", cmd_worker, "run the scheduler and job queue in this process")
    p.add_argument("--jobs-only", action="store_true", help="only run queued jobs, not the cron schedules")
    p.add_argument("--slots", type=int, default=1, help="jobs run at once in this process")
    return parser




def _refuse(message: str, *, as_json: bool, code: int) -> int:
    """The line on stderr and, under ``--json``, the one JSON document on stdout."""
    print(f"error: {message}", file=sys.stderr)
    if as_json:
        print(json.dumps({"error": message}))
    return code


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    words = sys.argv[1:] if argv is None else argv
    if words[:2] == ["report", "verify"]:  # `report verify FILE`, not `report MODEL VERSION` of a model "verify"
        argv = words = ["report-verify", *words[2:]]
    _Parser.refused = None
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse prints its own usage line (and --help its text)
        if exc.code and "--json" in words:
            print(json.dumps({"error": _Parser.refused or "the command line was not understood"}))
        return EXIT_BAD if exc.code else EXIT_OK
    try:
        outcome = args.fn(args)
    except (PolicyBlocked, IntegrityError, Conflict) as exc:
        return _refuse(str(exc), as_json=args.json, code=EXIT_NO)
    except LeanOpsError as exc:
        return _refuse(str(exc), as_json=args.json, code=EXIT_BAD)
    if args.json:
        print(json.dumps(outcome.doc, default=str))
    else:
        print(outcome.text if outcome.text is not None else json.dumps(outcome.doc, indent=2, default=str))
    return EXIT_NO if outcome.refused else EXIT_OK


if __name__ == "__main__":
    code = main()
    # The work is done and written. Interpreter shutdown's garbage collection walks every object pandas,
    # SQLAlchemy and scikit-learn made (a quarter of a second of a drift check's three); frozen, it skips
    # them. Exit handlers and finalizers still run.
    gc.freeze()
    sys.exit(code)
