"""The compliance report as a PDF (fpdf2): the JSON report's content as text, tables and one chart image.

DejaVu Sans (shipped with matplotlib) is embedded, so every character of the content prints as itself.
Values print as people read them (``core.formats``): metrics to 3 significant digits, counts with
separators, parameters and fairness as tables rather than JSON, long audit details cut with an ellipsis.
The JSON report keeps every digit; the PDF is for reading.
"""

from __future__ import annotations

import io
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from core import formats

TITLES = {
    "identity": "1. Identity", "model_card": "2. Model card", "training_data": "3. Training data",
    "training_config": "4. Training configuration", "evaluation": "5. Evaluation", "gates": "6. Policy gates",
    "approvals": "7. Approvals and promotion history", "monitoring": "8. Monitoring", "audit": "9. Audit log",
}


def _fonts() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


_ISO_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d")


def _text(value: Any) -> str:
    if isinstance(value, str) and _ISO_TIME.match(value):  # the JSON's ISO times, to the second
        try:
            return formats.value(datetime.fromisoformat(value))
        except ValueError:
            return value
    return formats.value(value)


class _Doc:
    def __init__(self, content: dict[str, Any]) -> None:
        from fpdf import FPDF

        self.pdf = pdf = FPDF(format="A4")
        fonts = _fonts()
        pdf.add_font("DejaVu", "", str(fonts / "DejaVuSans.ttf"))
        pdf.add_font("DejaVu", "B", str(fonts / "DejaVuSans-Bold.ttf"))
        pdf.add_font("DejaVu", "I", str(fonts / "DejaVuSans-Oblique.ttf"))
        pdf.add_font("DejaVuMono", "", str(fonts / "DejaVuSansMono.ttf"))
        ident = content["identity"]
        pdf.set_title(f"Compliance report: {ident['model']} v{ident['version']}")
        pdf.set_creator("LeanOps")
        pdf.set_auto_page_break(True, margin=15)
        pdf.add_page()
        pdf.set_font("DejaVu", "B", 16)
        pdf.multi_cell(0, 9, f"Compliance report — {ident['model']} version {ident['version']}",
                       new_x="LMARGIN", new_y="NEXT")
        self.line(f"Generated {_text(ident['report_time'])} by LeanOps", size=9)

    def line(self, text: str, *, size: float = 9, style: str = "") -> None:
        self.pdf.set_font("DejaVu", style, size)
        self.pdf.multi_cell(0, size * 0.5, text, new_x="LMARGIN", new_y="NEXT")

    def heading(self, text: str) -> None:
        self.pdf.ln(3)
        self.line(text, size=13, style="B")
        self.pdf.ln(1)

    def subheading(self, text: str) -> None:
        self.pdf.ln(1)
        self.line(text, size=10, style="B")

    def missing(self, notes: list[str]) -> None:
        for note in notes:
            self.line(f"Missing: {note}", size=8.5, style="I")

    def pairs(self, rows: list[tuple[str, Any]]) -> None:
        self.table(["field", "value"], [[k, _text(v)] for k, v in rows], widths=(50, 140), headings=False)

    def table(self, headers: list[str], rows: list[list[Any]], *, widths: tuple[float, ...] | None = None,
              headings: bool = True, size: float = 8) -> None:
        if not rows:
            return
        self.pdf.set_font("DejaVu", "", size)
        with self.pdf.table(col_widths=widths, width=190, text_align="LEFT", first_row_as_headings=headings,
                            line_height=size * 0.5, padding=0.8) as table:
            if headings:
                table.row([str(h) for h in headers])
            for row in rows:
                table.row([_text(v) for v in row])
        self.pdf.ln(1)

    def code(self, text: str) -> None:
        """Text as written (a diff), in a monospaced font, every line kept."""
        self.pdf.set_font("DejaVuMono", "", 7)
        self.pdf.multi_cell(0, 3.4, text or "(empty)", new_x="LMARGIN", new_y="NEXT")

    def image(self, png: bytes, width: float = 110) -> None:
        self.pdf.image(io.BytesIO(png), w=width)


def render(content: dict[str, Any], *, json_name: str | None = None, json_sha256: str | None = None) -> bytes:
    """The PDF of ``content``; ``json_sha256`` (of the JSON file rendered from the same content) is cited first."""
    from core.compliance import pdf_evidence

    doc = _Doc(content)
    if "coverage" in content:  # the matrix opens the report
        pdf_evidence.coverage(doc, content["coverage"], json_name=json_name, json_sha256=json_sha256,
                              titles={**TITLES, **pdf_evidence.TITLES})
    sections = {**SECTIONS, **pdf_evidence.SECTIONS}
    for key, title in {**TITLES, **pdf_evidence.TITLES}.items():
        if key not in content:
            continue
        doc.heading(title)
        section = content[key]
        sections[key](doc, section)
        doc.missing(section.get("missing", []))
    return bytes(doc.pdf.output())


def _identity(doc: _Doc, s: dict[str, Any]) -> None:
    doc.pairs([("model", s["model"]), ("version", s["version"]), ("MLflow run id", s["mlflow_run_id"]),
               ("model URI", s["model_uri"]), ("model artifact sha256", s["model_sha256"]),
               ("model files hashed", s["model_files"]), ("report time", s["report_time"]),
               ("report sha256", s["report_sha256"])])
    doc.line("The report sha256 is the sha256 of the JSON report's canonical form (sorted keys, no spaces, "
             "UTF-8) without the report_sha256 field.", size=7.5, style="I")


def _model_card(doc: _Doc, s: dict[str, Any]) -> None:
    doc.pairs([("intended use", s["intended_use"] or None), ("limitations", s["limitations"] or None),
               ("owner", s["owner"] or None), ("last edited", f"{_text(s['updated_at'])} by {s['updated_by']}"
                                                if s["updated_by"] else None)])


def _training_data(doc: _Doc, s: dict[str, Any]) -> None:
    doc.pairs([("dataset", s["dataset"]), ("version", s["version"]), ("rows", s["rows"]),
               ("file in the store", s["file_present"]), ("schema version", s["schema_version"])])
    doc.line("Dataset sha256:", size=9, style="B")
    doc.line(s["sha256"] or "—", size=9)
    if s["columns"]:
        doc.subheading("Schema")
        doc.table(["column", "dtype"], [[c["name"], c["dtype"]] for c in s["columns"]], widths=(95, 95))
    cert = s["certificate"]
    if cert is not None:
        doc.subheading(f"Quality certificate: {'PASSED' if cert['passed'] else 'FAILED'} ({_text(cert['at'])})")
        doc.table(["check", "column", "verdict", "observed", "expected"],
                  [[c["check"], c["column"], "PASS" if c["passed"] else "FAIL", c["observed"], c["expected"]]
                   for c in cert["checks"]], widths=(35, 35, 18, 51, 51))


def _training_config(doc: _Doc, s: dict[str, Any]) -> None:
    doc.pairs([("model kind", s["model_kind"]), ("task", s["task"]), ("target", s["target"]),
               ("sensitive column", s["sensitive"]), ("seed", s["seed"]),
               ("holdout share", s["holdout"]), ("code version", s["code_version"]), ("trained by", s["trained_by"]),
               ("started", s["started_at"]), ("finished", s["finished_at"]), ("status", s["status"])])
    if s.get("provenance"):  # a model trained elsewhere and imported
        doc.pairs([("provenance", s["provenance"])])
    if s["parameters"]:
        doc.subheading("Parameters")
        doc.table(["parameter", "value"], [list(row) for row in formats.flat_rows(s["parameters"])], widths=(70, 120))


def _evaluation(doc: _Doc, s: dict[str, Any]) -> None:
    from core.training.evaluation import figure_png

    if s["metrics"]:
        doc.table(["metric", "value", "baseline"],
                  [[k, v, s["baseline"].get(k)] for k, v in sorted(s["metrics"].items())], widths=(70, 60, 60))
    for column, measures in (s["fairness"] or {}).items():
        doc.subheading(f"Fairness by {column}")
        if not isinstance(measures, dict):
            continue
        if isinstance(groups := measures.get("by_group"), dict) and groups:
            header, rows = formats.group_table(groups)  # one row per group, one column per measure
            doc.table(header, rows)
        others = {k: v for k, v in measures.items() if k != "by_group"}
        if others:
            doc.table(["measure", "value"], [list(row) for row in formats.flat_rows(dict(sorted(others.items())))],
                      widths=(70, 120))
    plots = {k: s[k] for k in ("confusion_matrix", "residuals") if s.get(k)}
    if plots and (png := figure_png(plots, title="confusion matrix" if "confusion_matrix" in plots
                                    else "residuals on the holdout")):
        doc.subheading("Confusion matrix (holdout)" if "confusion_matrix" in plots else "Residuals (holdout)")
        doc.image(png[1])


def _gates(doc: _Doc, s: dict[str, Any]) -> None:
    if s["evaluated"]:
        doc.line(f"Latest evaluation ({s['context']}, {_text(s['evaluated_at'])}): "
                 f"{'ALL GATES PASSED' if s['passed'] else 'GATES FAILED'}", size=9, style="B")
        doc.table(["check", "observed", "required", "verdict", "detail"],
                  [[c["name"], c["observed"], c["required"], c["verdict"].upper(), c["detail"]] for c in s["checks"]],
                  widths=(45, 30, 30, 20, 65))
    for move in s["forced_promotions"]:
        doc.line(f"FORCED PROMOTION {_text(move['ts'])} by {move['actor']}: {move['reason']} "
                 f"(failed: {', '.join(move['failed_checks']) or '—'})", size=9, style="B")
    from core.compliance import pdf_evidence

    pdf_evidence.gates_extra(doc, s)
    if s["history"]:
        doc.subheading("Evaluations")
        doc.table(["time", "context", "passed"], [[h["ts"], h["context"], h["passed"]] for h in s["history"]],
                  widths=(90, 50, 50))


def _approvals(doc: _Doc, s: dict[str, Any]) -> None:
    doc.line(f"Approved by: {', '.join(s['approvers']) or '—'}", size=9, style="B")
    for req in s["requests"]:
        doc.subheading(f"Request {req['id']} by {req['requested_by']} ({_text(req['created_at'])}): {req['status']}")
        if req["reason"]:
            doc.line(f"Reason: {req['reason']}")
        doc.table(["approver", "decision", "when", "comment"],
                  [[d["approver"], d["decision"], d["ts"], d["comment"]] for d in req["decisions"]],
                  widths=(35, 25, 60, 70))
    if s["moves"]:
        doc.subheading("Alias moves involving this version")
        doc.table(["time", "alias", "action", "by", "from → to", "reason"],
                  [[m["ts"], m["alias"], m["action"] + (" (FORCED)" if m["forced"] else ""), m["actor"],
                    f"{_text(m['from_version'])} → {_text(m['to_version'])}", m["reason"]] for m in s["moves"]],
                  widths=(42, 20, 28, 30, 20, 50))
    if s["champion_periods"]:
        doc.subheading("Time ranges as champion")
        doc.table(["from", "until", "moved by", "reason"],
                  [[p["start"], p["end"] or "now", p["moved_by"], p["reason"]] for p in s["champion_periods"]],
                  widths=(50, 50, 35, 55))


def _monitoring(doc: _Doc, s: dict[str, Any]) -> None:
    drift, perf = s["drift"], s["performance"]
    doc.pairs([("drift checks", drift["checks"]), ("checks that found drift", drift["drifted"]),
               ("predictions served", s["predictions"]),
               ("performance from feedback", ", ".join(f"{k} {_text(v)}" for k, v in perf["metrics"].items())
                + f" on {perf['labelled']} labels" if perf else None)])
    if latest := drift["latest"]:
        _latest_check(doc, latest)
    if shadow := s.get("shadow"):
        _shadow(doc, shadow)
    if batches := s.get("batch_runs"):
        doc.subheading("Batch scoring runs")
        doc.table(["started", "rows", "status", "output sha256", "by"],
                  [[b["started_at"], f"{b['rows']:,}", b["status"], (b["output_sha256"] or "")[:16], b["by"]]
                   for b in batches[:30]], widths=(40, 22, 20, 50, 58))
    if s["alerts"]:
        doc.subheading("Alerts")
        doc.table(["time", "condition", "severity", "title", "delivery"],
                  [[a["ts"], a["condition"], a["severity"], a["title"], a.get("delivery") or
                    ("not sent: cooldown" if a["suppressed"] else "unknown")] for a in s["alerts"]],
                  widths=(38, 24, 18, 70, 40))


def _latest_check(doc: _Doc, latest: dict[str, Any]) -> None:
    """What matters first (the headline and the rules that fired), then the facts, the drifted columns by their
    share of the model's importance and the label-free estimate (a report made before these fields has none)."""
    doc.subheading("Latest drift check")
    if latest.get("headline"):
        doc.line(latest["headline"], size=10, style="B")
    if latest.get("verdict"):
        doc.line("Counts as drift because: " + "; ".join(latest["verdict"]), size=9)
    elif latest.get("not_counted"):
        doc.line("No dataset drift: " + "; ".join(latest["not_counted"]), size=9)
    doc.pairs([("time", latest["ts"]), ("data", latest["window"]), ("rows", latest["current_rows"]),
               ("drift share", formats.percent(latest["drift_share"])),
               ("threshold", formats.percent(latest["threshold"])),
               ("drift detected", latest["drift_detected"]), ("drifted columns", latest["drifted_columns"])])
    if ranked := latest.get("drifted_ranked"):
        doc.table(["drifted column", "share of the model's importance"],
                  [[r["column"], "not recorded" if r["importance"] is None else formats.percent(r["importance"])]
                   for r in ranked], widths=(70, 70))
    if estimate := latest.get("estimated_performance"):
        doc.table(["metric (estimated without labels)", "estimate", "band", "holdout"],
                  [[metric, _text(e.get("value")), f"{_text(e.get('lower'))} – {_text(e.get('upper'))}",
                    _text(e.get("reference"))] for metric, e in estimate.items()], widths=(60, 35, 55, 35))


def _shadow(doc: _Doc, found: dict[str, Any]) -> None:
    """The challenger scored on the champion's live records: the paired numbers and the policy's decision."""
    if not found.get("compared"):
        return
    doc.subheading(f"Shadow comparison with champion v{found['champion']}")
    doc.line(f"Decision: {found['decision']}. " + "; ".join(found.get("reasons") or []), size=9)

    def band(e: dict[str, Any] | None) -> str:
        return "none" if not e else f"{_text(e['value'])} ({_text(e['lower'])} – {_text(e['upper'])})"

    doc.pairs([("records compared", found["compared"]), ("agreement", formats.percent(found["agreement"])),
               ("paired labels", found["labelled"]),
               (f"{found['metric']}: champion / challenger",
                f"{_text(found['champion_score'])} / {_text(found['challenger_score'])}"),
               ("p-value (McNemar / Wilcoxon, paired)", found["p_value"]),
               (f"estimated {found['metric']} without labels: champion / challenger",
                f"{band(found.get('champion_estimate'))} / {band(found.get('challenger_estimate'))}"),
               ("median time per request: champion end to end / challenger model time in shadow",
                f"{_text(found.get('champion_latency_ms'))} ms / {_text(found.get('challenger_latency_ms'))} ms")])


def _audit(doc: _Doc, s: dict[str, Any]) -> None:
    chain = s["chain"]
    verdict = ("Audit chain verified: intact" if chain["ok"] else
               f"Audit chain verified: BROKEN at event {chain['first_bad']}")
    doc.line(f"{verdict} ({chain['reason']}; {chain['checked']} events checked)", size=10, style="B")
    if cp := s.get("checkpoint"):
        doc.line(f"Latest signed checkpoint {cp['n']}: event {cp['seq']}, hash {cp['hash']}, "
                 f"at {_text(cp['time'])}", size=8)
        doc.line(f"Ed25519 signature {cp['signature']}", size=7)
    else:
        doc.line("No signed checkpoint of the audit chain yet", size=8)
    doc.line(f"{s['events_total']} events with subject {s['subject']}"
             + (f"; the newest {len(s['events'])} are listed" if s["truncated"] else ""), size=9)
    from core.compliance import pdf_evidence

    pdf_evidence.audit_rows(doc, s)  # whole details, nothing cut; repetitive actions summarised with their count


SECTIONS = {"identity": _identity, "model_card": _model_card, "training_data": _training_data,
            "training_config": _training_config, "evaluation": _evaluation, "gates": _gates,
            "approvals": _approvals, "monitoring": _monitoring, "audit": _audit}
