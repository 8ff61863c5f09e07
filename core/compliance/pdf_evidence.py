"""The PDF pages of the auditor's sections (core/compliance/evidence.py, coverage.py), drawn with pdf.py's _Doc."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from core import formats

_Doc = Any  # core.compliance.pdf's document (not imported: pdf.py imports this module)
_ISO_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d")

TITLES = {
    "inventory": "10. Inventory entry and periodic reviews", "test_reports": "11. Signed test reports",
    "group_performance": "12. Accuracy per group", "post_market_plan": "13. Post-market monitoring plan",
    "retention": "14. Log retention", "changes": "15. Changes", "late_label_ledger": "16. Late-label ledger",
}


def _text(value: Any) -> str:
    """As pdf.py shows values: the JSON's ISO times to the second, numbers and structures as people read them."""
    if isinstance(value, str) and _ISO_TIME.match(value):
        try:
            return formats.value(datetime.fromisoformat(value))
        except ValueError:
            return value
    return formats.value(value)


def coverage(doc: _Doc, s: dict[str, Any], *, json_name: str | None, json_sha256: str | None,
             titles: dict[str, str]) -> None:
    """The matrix that opens the report, then where it comes from (``titles``: section key → its PDF title)."""
    doc.heading("Coverage: what the regulations ask and where this report answers")
    if json_sha256:
        doc.line(f"This PDF and the JSON report {json_name or ''} are one snapshot; the JSON file's sha256 is "
                 f"{json_sha256}.", size=8.5, style="B")
    c = s["counts"]
    doc.line(f"{c['covered']} covered, {c['missing']} missing, {c['outside']} outside what LeanOps can answer "
             f"(matrix version {s['matrix_version']}).", size=9, style="B")
    def where(row: dict[str, Any]) -> str:  # a covered row names the sections as this PDF titles them
        if row["status"] != "covered":
            return str(row["note"])
        return "see " + "; ".join(titles.get(name, name) for name in row["sections"])

    doc.table(["framework", "item", "status", "evidence in this report, or what would supply it"],
              [[r["framework"], f"{r['ref']}: {r['title']}", r["status"].upper(), where(r)] for r in s["rows"]],
              widths=(24, 56, 20, 90), size=7)
    doc.line("Sources: " + "; ".join(f"{src['title']} ({src['url']})" for src in s["sources"]), size=7, style="I")


def _inventory(doc: _Doc, s: dict[str, Any]) -> None:
    due = s["next_review_due"]
    doc.pairs([("owner", s["owner"] or None), ("risk tier", s["risk_tier"]), ("this tier requires", s["tier_requires"]),
               ("intended use", s["intended_use"] or None), ("out-of-scope use", s["out_of_scope_use"] or None),
               ("tags", ", ".join(s["tags"]) or None), ("status", s["status"]),
               ("review interval", f"{s['review_interval_months']} months" if s["review_interval_months"] else "none"),
               ("next review due", (f"OVERDUE since {_text(due)}" if s["overdue"] else _text(due)) if due else None),
               ("open alerts (7 days)", s["open_alerts"])])
    if s["reviews"]:
        doc.subheading("Reviews")
        doc.table(["when", "by", "outcome", "champion", "notes"],
                  [[r["ts"], r["reviewer"], r["outcome"], r["version"], r["notes"]] for r in s["reviews"]],
                  widths=(36, 26, 20, 18, 90))


def _test_reports(doc: _Doc, s: dict[str, Any]) -> None:
    if not s["reports"]:
        return
    doc.line(f"Each evaluation of the gates is a dated report signed with the workspace's Ed25519 audit key "
             f"{s['public_key']}; an approval adds the approver's signature. {s['how_to_verify']}.", size=8)
    doc.table(["#", "context", "gates", "signed by", "report sha256", "verified now"],
              [[r["id"], r["context"], "passed" if r["passed"] else "FAILED",
                "; ".join(f"{g['signer']} ({g['role']}, {_text(g['signed_at'])})" for g in r["signatures"]),
                r["report_sha256"], "yes" if r["verified"] else f"NO: {r['verification']}"] for r in s["reports"]],
              widths=(8, 20, 14, 62, 56, 30), size=6.5)
    doc.line("The signed documents are embedded whole in the JSON report (test_reports.reports[].document).",
             size=7.5, style="I")


def _group_performance(doc: _Doc, s: dict[str, Any]) -> None:
    if not s["groups"]:
        return
    doc.line(f"By {s['column']}, on the holdout:", size=9)
    doc.table(["group", "rows", *s["metrics"]], [[g["group"], g["count"], *[g.get(m) for m in s["metrics"]]]
                                                  for g in s["groups"]])
    if s["gaps"]:
        gaps = ", ".join(f"{m} {_text(v)}" for m, v in s["gaps"].items())
        doc.line(f"Gap between the best and the worst group: {gaps}", size=9)


def _plan(doc: _Doc, s: dict[str, Any]) -> None:
    doc.table(["what is watched", "how", "when", "counts when", "what happens automatically"],
              [[w["what"], w["how"], w["when"], w["verdict"], w["automatic"]] for w in s["watched"]],
              widths=(30, 50, 35, 35, 40), size=7)
    doc.line(f"Alerted: {', '.join(s['alerted']) or 'nobody (no channel enabled)'}; one alert per incident within "
             f"{_text(s['cooldown_minutes'])} minutes, production changes always sent.", size=8.5)


def _retention(doc: _Doc, s: dict[str, Any]) -> None:
    doc.line(s["statement"], size=9, style="" if s["meets_art19"] else "B")


def _changes(doc: _Doc, s: dict[str, Any]) -> None:
    if s["versions"]:
        doc.subheading("Versions")
        doc.table(["version", "trained by", "when", "data", "kind", "status"],
                  [[v["version"], v["trained_by"], v["at"], v["dataset"], v["model_kind"], v["status"]]
                   for v in s["versions"]], widths=(16, 34, 40, 40, 36, 24))
    if s["alias_moves"]:
        doc.subheading("Alias moves")
        doc.table(["when", "alias", "action", "by", "from → to", "reason"],
                  [[m["ts"], m["alias"], m["action"] + (" (FORCED)" if m["forced"] else ""), m["actor"],
                    f"{_text(m['from_version'])} → {_text(m['to_version'])}", m["reason"]] for m in s["alias_moves"]],
                  widths=(38, 20, 30, 30, 20, 52), size=7)
    if s["policy_changes"]:
        doc.subheading("Policy changes")
        for p in s["policy_changes"]:
            flag = " (BETWEEN THIS VERSION'S TRAINING AND ITS PROMOTION)" if p["between_training_and_promotion"] else ""
            doc.line(f"{_text(p['ts'])} by {p['actor']}{flag}", size=8.5, style="B")
            doc.code(p["diff"])


def _ledger(doc: _Doc, s: dict[str, Any]) -> None:
    if not s["windows"]:
        return
    doc.line(f"{s['within_band']} of {s['judged']} estimate(s) checked against realised labels fell within their band.",
             size=9, style="B")
    doc.table(["check", "time", "metric", "estimate (band)", "realised", "labels", "within band", "note"],
              [[w["check"], w["ts"], w["metric"], f"{_text(w['estimate'])} ({_text(w['lower'])} – {_text(w['upper'])})",
                w["realised"], w["labels"], {True: "yes", False: "NO", None: "—"}[w["within_band"]], w.get("note", "")]
               for w in s["windows"]], widths=(12, 30, 16, 36, 16, 14, 16, 50), size=7)


SECTIONS = {"inventory": _inventory, "test_reports": _test_reports, "group_performance": _group_performance,
            "post_market_plan": _plan, "retention": _retention, "changes": _changes, "late_label_ledger": _ledger}


def gates_extra(doc: _Doc, s: dict[str, Any]) -> None:
    """Under the gates: whether fairness was gated, and any policy change between training and promotion."""
    if fairness := s.get("fairness"):
        doc.line(fairness["statement"] if fairness["gated"] else fairness["statement"], size=9,
                 style="" if fairness["gated"] else "B")
    if changed := s.get("policy_changes_before_promotion"):
        doc.line(f"THE POLICY CHANGED {len(changed)} TIME(S) BETWEEN THIS VERSION'S TRAINING AND ITS PROMOTION "
                 f"(by {', '.join(sorted({c['actor'] for c in changed}))}; diffs under 15. Changes): the gate results "
                 "above are those of the policy in force at each evaluation.", size=9, style="B")


def audit_rows(doc: _Doc, s: dict[str, Any]) -> None:
    """The model's events: repetitive actions as one line with their count, the others one by one, whole."""
    summary = (s.get("summary") or {}).get("summarised") or []
    repeated = {r["action"] for r in summary}
    for r in summary:
        doc.line(f"{r['action']}: {formats.count(r['count'])} events from {_text(r['first'])} to {_text(r['last'])} "
                 "(summarised; every one is in the JSON report)", size=8.5)
    doc.table(["#", "time", "actor", "action", "details"],
              [[e["seq"], e["ts"], e["actor"], e["action"], _text(e["details"])] for e in s["events"]
               if e["action"] not in repeated],
              widths=(12, 36, 28, 34, 80), size=6.5)
