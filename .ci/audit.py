"""Known vulnerabilities in the locked versions, or a loud SKIPPED where no advisory service answers.

`make audit` (and so CI) runs this with the tools venv's Python: pip-audit reads the pins from the
hashed lock files (no install, no resolution: `--disable-pip`) and asks a vulnerability service about
each release. A vulnerability that has a fixed release fails the audit (upgrade: `make lock UPGRADE=1`,
or raise the pin); one with no fix yet is printed as a warning, since nothing can be done but wait.
A package the service could not look up fails it too: "not audited" is not "clean".

Why a canary first: on a network that reaches only package indexes, pip-audit's default service
(PyPI's per-release JSON) answers 404 for every package, and pip-audit then prints "No known
vulnerabilities found" with every dependency skipped, and exits 0: a silent pass. So a service must
first show that it answers, by naming an advisory for a release long known to be vulnerable
(requests 2.19.0: CVE-2018-18074, fixed in 2.20.0). When no service does, the audit says SKIPPED,
loudly, and exits 0 so that CI on such a network still runs; --require-service (or
LEANOPS_AUDIT_REQUIRED=1) turns that into exit 3 wherever a real audit is expected.

pip-audit cannot audit offline from a vendored advisory snapshot; `--osv-url` can point it at an OSV
mirror (the tests point it at a local stand-in that speaks OSV's /v1/query protocol).

Exit codes: 0 audited with no fixable vulnerability, or skipped; 1 a fixable vulnerability, a package
the service could not audit, or pip-audit failing mid-audit; 2 bad arguments; 3 skipped under
--require-service.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CANARY = "requests==2.19.0"
SERVICES = ("pypi", "osv")
BANNER = "#" * 100


@dataclass(frozen=True)
class Verdict:
    """What one pip-audit report says: the exit code and the lines that explain it."""

    code: int
    lines: list[str]


def pip_audit(requirements: list[Path], *, service: str, options: argparse.Namespace,
              extra: list[str]) -> tuple[dict[str, Any] | None, str]:
    """Runs pip-audit on the pinned requirements; returns its JSON report (None when it failed) and why."""
    command = [sys.executable, "-m", "pip_audit", "--disable-pip", "--format", "json", "--desc", "on",
               "--progress-spinner", "off", "--vulnerability-service", service,
               "--timeout", str(options.timeout), *extra]
    if service == "osv" and options.osv_url:
        command += ["--osv-url", options.osv_url]
    if options.cache_dir:
        command += ["--cache-dir", options.cache_dir]
    for path in requirements:
        command += ["--requirement", str(path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=options.timeout * 40 + 60)
    try:
        return json.loads(done.stdout), ""
    except json.JSONDecodeError:
        last = [line for line in done.stderr.strip().splitlines() if line.strip()]
        return None, (last[-1] if last else f"pip-audit exited {done.returncode} with no report")[:300]


def answers(service: str, options: argparse.Namespace) -> str:
    """'' when the service names an advisory for the canary release, else why it does not count."""
    with tempfile.TemporaryDirectory() as folder:
        canary = Path(folder, "canary.txt")
        canary.write_text(CANARY + "\n")
        report, error = pip_audit([canary], service=service, options=options, extra=["--no-deps"])
    if report is None:
        return error
    for dependency in report.get("dependencies", []):
        if dependency.get("vulns"):
            return ""
        if dependency.get("skip_reason"):
            return f"could not look {CANARY} up ({dependency['skip_reason']})"
    return f"answered, but named no advisory for {CANARY} (CVE-2018-18074)"


def judge(report: dict[str, Any], *, service: str) -> Verdict:
    """Fails on a vulnerability with a fixed release or a package left unaudited; warns on the rest."""
    fixable: list[str] = []
    unfixed: list[str] = []
    unaudited: list[str] = []
    seen: set[tuple[str, str]] = set()
    for dependency in report.get("dependencies", []):
        key = (dependency["name"].lower(), dependency.get("version", ""))
        if key in seen:  # the dev lock repeats the runtime lock's pins
            continue
        seen.add(key)
        release = f"{dependency['name']} {dependency.get('version', '?')}"
        if dependency.get("skip_reason"):
            unaudited.append(f"  {release}: {dependency['skip_reason']}")
        for vuln in dependency.get("vulns", []):
            ids = " ".join([vuln["id"], *vuln.get("aliases", [])])
            what = (vuln.get("description") or "").strip().replace("\n", " ")[:160]
            if vuln.get("fix_versions"):
                fixable.append(f"  {release}: {ids}, fixed in {', '.join(vuln['fix_versions'])}: {what}")
            else:
                unfixed.append(f"  {release}: {ids}, no fixed release yet: {what}")
    lines = [f"vulnerability audit ({service}): {len(seen)} locked releases checked"]
    if unfixed:
        lines += ["warning: known vulnerabilities with no fixed release (not failing the audit):", *unfixed]
    if unaudited:
        lines += [f"FAILED: {len(unaudited)} releases could not be audited:", *unaudited]
    if fixable:
        lines += [f"FAILED: {len(fixable)} known vulnerabilities have a fixed release; raise the pins "
                  "(`make lock UPGRADE=1`, or the version in requirements*.txt, then `make lock`):", *fixable]
    if not unaudited and not fixable:
        lines.append("vulnerability audit passed: no known vulnerability with a fixed release")
    return Verdict(code=1 if unaudited or fixable else 0, lines=lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("locks", nargs="+", type=Path, help="hashed lock files to audit")
    parser.add_argument("--service", action="append", choices=SERVICES,
                        help="vulnerability service to try, in order (default: pypi, then osv)")
    parser.add_argument("--osv-url", help="an OSV-compatible /v1/query URL instead of api.osv.dev")
    parser.add_argument("--ignore-vuln", action="append", default=[], metavar="ID",
                        help="a vulnerability ID to leave out, for one reviewed and judged harmless here")
    parser.add_argument("--timeout", type=int, default=15, help="seconds per request (default 15)")
    parser.add_argument("--cache-dir", help="pip-audit's HTTP cache (default: pip's)")
    parser.add_argument("--require-service", action="store_true",
                        default=os.environ.get("LEANOPS_AUDIT_REQUIRED", "") not in ("", "0", "false"),
                        help="exit 3 instead of 0 when no service answers (also LEANOPS_AUDIT_REQUIRED=1)")
    options = parser.parse_args(argv)
    missing = [str(path) for path in options.locks if not path.is_file()]
    if missing:
        parser.error(f"no such lock file: {', '.join(missing)}")

    reasons = []
    for service in options.service or SERVICES:
        reason = answers(service, options)
        if reason:
            reasons.append(f"{service}: {reason}")
            continue
        ignores = [arg for vuln in options.ignore_vuln for arg in ("--ignore-vuln", vuln)]
        report, error = pip_audit(options.locks, service=service, options=options, extra=ignores)
        if report is None:
            print(f"FAILED: the {service} service answered the canary, then pip-audit failed: {error}",
                  file=sys.stderr)
            return 1
        verdict = judge(report, service=service)
        print("\n".join(verdict.lines), file=sys.stderr if verdict.code else sys.stdout)
        return verdict.code

    print("\n".join([
        BANNER,
        "vulnerability audit SKIPPED: no vulnerability service answered, so the lock files were NOT "
        "checked for known vulnerabilities.",
        *(f"  {reason}" for reason in reasons),
        "Run `make audit` where PyPI's JSON API or api.osv.dev is reachable"
        + (" (required here: --require-service)." if options.require_service else "."),
        BANNER,
    ]), file=sys.stderr)
    return 3 if options.require_service else 0


if __name__ == "__main__":
    sys.exit(main())
