"""One owner per table (STYLE.md principle 12, issue 23): each stage or floor module owns its tables and exports
small readers (and writers); other rooms call them and never query the table themselves.

Checked by parsing core/: a query of a table is a call of ``select``, ``update``, ``delete`` or ``insert`` with
the table class anywhere in its arguments (``select(Job)``, ``select(Job.status)``), ``.select_from(Table)``
(``select(func.count()).select_from(Job)``), or ``.get(Table, …)`` / ``.query(Table…)`` on a session. A query
of one's own table that joins another's (``select(TrainingRun).join(Job, …)``, to filter or page in SQL) is not
counted. Run with ``-s`` to see ``table queries outside their owner: N`` and where.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# room → the db/models.py classes it owns. A room is a stage (core/<stage>/), a floor package (core/platform/,
# core/accounts/, core/alerts/) or the audit log (core/audit.py and core/audit_checkpoints.py); the other
# floor modules (core/policy.py, core/secrets.py, …) own no table.
OWNERS: dict[str, set[str]] = {
    "data": {"Dataset", "DatasetRun", "DatasetSchema", "DatasetVersion", "SourceDatabase"},
    "training": {"TrainingRun", "ModelImport",  # ModelImport: core/training/imports.py (models from elsewhere)
                 # a version MLflow is creating, until LeanOps committed it (training/pending.py)
                 "PendingRegistration"},
    # the alias tables only through core/registry/state.py (tests/test_model_state_rules.py); the gate
    # results promotion evaluates are kept by core/registry/gate_records.py (registry is the earlier stage)
    "registry": {"AliasMove", "CurrentAlias", "ModelCard", "GateEvaluation",
                 # the inventory entry and periodic reviews (core/registry/stewardship.py)
                 "ModelProfile", "ModelReview"},
    "promotion": {"Approval", "PromotionRequest",
                  "SignedTestReport"},  # the signed report of each gate evaluation (core/promotion/test_reports.py)
    "serving": {"BatchRun"},  # batch scoring runs (core/serving/batch_runs.py)
    "monitoring": {"DriftCheck"},
    # the job queue, schedules, leases, locks and the prediction log (core/platform/prediction_log/)
    "platform": {"Job", "Schedule", "Lease", "Lock", "PredictionLog", "PredictionError", "Feedback"},
    "audit": {"AuditEvent", "AuditHead"},
    "alerts": {"Alert", "AlertChannel"},
    "accounts": {"User", "ApiToken", "BrowserSession", "LoginThrottle"},
}
OWNER_OF = {table: room for room, tables in OWNERS.items() for table in tables}
AUDIT_MODULES = {"core/audit.py", "core/audit_checkpoints.py"}
QUERY_FUNCTIONS = {"select", "update", "delete", "insert"}
METHODS = {"select_from", "get", "query"}  # of a select, or of a session

# module → the foreign tables it may query, and why.
# core/secrets.py rotates the sealing key: ``rotate`` and ``seal_plain`` re-seal every sealed column (the URLs of
# data's source databases, the secrets of alerts' channels) in one transaction, so a rotation never leaves some
# values under the old key. The floor cannot import the data stage, and owners registering their sealed columns
# would be machinery for two columns; this one module reads and writes them itself.
EXCEPTIONS: dict[str, set[str]] = {"core/secrets.py": {"SourceDatabase", "AlertChannel"}}


def room_of(rel: str) -> str:
    """The room a core module belongs to (see ``OWNERS``)."""
    parts = rel.split("/")
    if len(parts) > 2:
        return parts[1]
    return "audit" if rel in AUDIT_MODULES else rel


def _names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _queried(call: ast.Call) -> set[str]:
    """The names in the arguments of a query call (empty for a call that is not one)."""
    func = call.func
    name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
    if name in QUERY_FUNCTIONS:
        args = call.args
    elif name in METHODS and isinstance(func, ast.Attribute):
        args = call.args[:1] if name == "get" else call.args
    else:
        return set()
    return set().union(*(_names(a) for a in args)) if args else set()


def foreign_queries(root: Path) -> list[str]:
    """``path:line Table (owner)`` for every query of a table outside its owner's room, under ``root``/core."""
    found = set()
    for path in sorted((root / "core").rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        room, allowed = room_of(rel), EXCEPTIONS.get(rel, set())
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Call):
                for table in _queried(node):
                    owner = OWNER_OF.get(table)
                    if owner is not None and owner != room and table not in allowed:
                        found.add((rel, node.lineno, table, owner))
    return [f"{rel}:{line} {table} ({owner})" for rel, line, table, owner in sorted(found)]


def test_every_table_has_one_owner() -> None:
    tree = ast.parse((ROOT / "db" / "models.py").read_text())
    tables = {node.name for node in tree.body if isinstance(node, ast.ClassDef)
              and any(isinstance(b, ast.Name) and b.id == "Base" for b in node.bases)}
    assert tables == set(OWNER_OF), (f"without an owner: {sorted(tables - set(OWNER_OF))}; "
                                     f"owned but not a table: {sorted(set(OWNER_OF) - tables)}")
    assert sum(len(t) for t in OWNERS.values()) == len(OWNER_OF)  # no table in two rooms


def test_stages_query_only_their_own_tables() -> None:
    sites = foreign_queries(ROOT)
    print(f"\ntable queries outside their owner: {len(sites)}" + "".join(f"\n  {s}" for s in sites))
    assert sites == [], "call the owner's reader (or give it one) instead of querying its table"


def test_the_exceptions_are_still_needed() -> None:
    """An exception nobody needs any more goes, so it cannot hide a new query."""
    saved = dict(EXCEPTIONS)
    try:
        EXCEPTIONS.clear()
        needed = {site.split(":")[0] for site in foreign_queries(ROOT)}
    finally:
        EXCEPTIONS.update(saved)
    assert set(saved) <= needed, f"exceptions no module needs: {sorted(set(saved) - needed)}"
