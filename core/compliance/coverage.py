"""The coverage matrix that opens the compliance report: each regulation item → the report section that is its
evidence, or "missing" with what would supply it, or "outside" what LeanOps can answer.

The items, their sources and the matrix version live in one data file, ``coverage_matrix.json``; this module
only knows how to tell, from a built report, whether each named piece of evidence is there.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

MATRIX_PATH = Path(__file__).resolve().parent / "coverage_matrix.json"

Doc = dict[str, Any]


def _card_filled(c: Doc) -> bool:
    card = c["model_card"]
    return bool(card.get("intended_use") and card.get("limitations"))


# evidence key → (present in this report?, what would supply it)
EVIDENCE: dict[str, tuple[Callable[[Doc], bool], str]] = {
    "identity": (lambda c: c["identity"]["model_sha256"] is not None,
                 "the model's files readable in MLflow (their sha256 identifies the version)"),
    "inventory.owner": (lambda c: bool(c["inventory"]["owner"]),
                        "an owner account in the inventory entry (Inventory page or cli.py model profile --owner)"),
    "inventory.intended_use": (lambda c: bool(c["inventory"]["intended_use"]),
                               "the intended use in the inventory entry"),
    "inventory.out_of_scope_use": (lambda c: bool(c["inventory"]["out_of_scope_use"]),
                                   "the out-of-scope use in the inventory entry"),
    "inventory.risk_tier": (lambda c: c["inventory"]["risk_tier"] in ("low", "medium", "high"),
                            "policy risk_tier"),
    "inventory.review_current": (lambda c: c["inventory"]["last_review"] is not None
                                 and not c["inventory"]["overdue"],
                                 "an approver's periodic review, not overdue (Inventory page or cli.py model review)"),
    "model_card": (_card_filled, "the version's model card: intended use and limitations (Registry page)"),
    "training_config": (lambda c: c["training_config"]["model_kind"] is not None, "a LeanOps training run"),
    "training_data": (lambda c: c["training_data"]["dataset"] is not None and c["training_data"]["rows"] is not None,
                      "a registered dataset version the run trained on"),
    "training_data.certificate": (lambda c: bool((c["training_data"]["certificate"] or {}).get("passed")),
                                  "a passed quality certificate of the training data"),
    "training_data.schema": (lambda c: bool(c["training_data"]["columns"]), "the training data's schema"),
    "training_data.sha256": (lambda c: c["training_data"]["sha256"] is not None, "the training data's content hash"),
    "test_reports.signed": (lambda c: bool(c["test_reports"]["reports"]) and c["test_reports"]["all_verified"],
                            "a gate evaluation signed with the audit key (registration, approval or promotion)"),
    "evaluation.metrics": (lambda c: bool(c["evaluation"]["metrics"]), "holdout metrics from training"),
    "evaluation.baseline": (lambda c: bool(c["evaluation"]["baseline"]), "a baseline model's holdout metrics"),
    "group_performance": (lambda c: bool(c["group_performance"]["groups"]),
                          "a sensitive column named at training (--sensitive), measured per group"),
    "gates.evaluated": (lambda c: bool(c["gates"]["evaluated"]), "an evaluation of the policy gates"),
    "gates.fairness_stated": (lambda c: bool(c["gates"]["fairness"]["gated"]),
                              "a fairness gate: policy fairness.column, or a sensitive column named at training"),
    "approvals.human_oversight": (lambda c: bool(c["approvals"]["approvers"]),
                                  "an approver's approval of the promotion (policy approval.required)"),
    "approvals.independent": (lambda c: bool(c["approvals"]["approvers"]),
                              "an approval by someone other than the trainer (policy approval.required)"),
    "approvals.deployed": (lambda c: bool(c["approvals"]["champion_periods"]), "a promotion to champion"),
    "changes": (lambda c: bool(c["changes"]["versions"]), "the model's versions and alias moves"),
    "post_market_plan": (lambda c: bool(c["post_market_plan"]["watched"]), "the policy's monitoring settings"),
    "monitoring.drift": (lambda c: c["monitoring"]["drift"]["checks"] > 0, "a drift check of this version"),
    "monitoring.performance": (lambda c: c["monitoring"]["performance"] is not None,
                               "feedback labels for this version's predictions"),
    "monitoring.predictions": (lambda c: c["monitoring"]["predictions"] > 0, "served predictions in the log"),
    "late_label_ledger": (lambda c: any(r["realised"] is not None for r in c["late_label_ledger"]["windows"]),
                          "a drift check's label-free estimate whose window later received labels"),
    "audit.chain": (lambda c: c["audit"]["chain"]["ok"] and c["audit"]["events_total"] > 0,
                    "an intact audit chain with the model's events"),
    "retention.six_months": (lambda c: bool(c["retention"]["meets_art19"]),
                             "prediction log retention of at least six months (LEANOPS_PREDICTION_RETENTION_DAYS "
                             ">= 183)"),
}


def matrix() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(MATRIX_PATH.read_text())
    return data


def evaluate(content: Doc) -> dict[str, Any]:
    """The coverage section of a built report (every other section already in ``content``)."""
    data = matrix()
    rows = []
    for item in data["items"]:
        row = {"framework": item["framework"], "ref": item["ref"], "title": item["title"], "asks": item["asks"],
               "sections": item["sections"]}
        if item.get("outside"):
            rows.append({**row, "status": "outside", "note": item["outside"]})
            continue
        absent = []
        for key in item["evidence"]:
            present, supply = EVIDENCE[key]
            try:
                ok = bool(present(content))
            except (KeyError, TypeError):
                ok = False
            if not ok:
                absent.append(supply)
        rows.append({**row, "status": "missing" if absent else "covered",
                     "note": "; ".join(absent) if absent else "see " + ", ".join(item["sections"])})
    counts = {s: sum(r["status"] == s for r in rows) for s in ("covered", "missing", "outside")}
    return {"matrix_version": data["matrix_version"], "sources": data["sources"], "rows": rows, "counts": counts,
            "missing": [f"{r['framework']} {r['ref']}: {r['note']}" for r in rows if r["status"] == "missing"]}
