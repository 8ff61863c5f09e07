"""Supply chain: every install comes from a hashed lock file, and the audit never passes silently.

The lock files (requirements*.lock, `make lock`) pin every package with its sha256s; `make run`, `make test`
and the Docker image install them in pip's hash-checking mode. `.ci/audit.py` (`make audit`, run by CI)
asks a vulnerability service about every locked release; here pip-audit talks to a local stand-in that
speaks OSV's /v1/query protocol, so the tests see what CI sees when a service answers, and when none does.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
TOOLS_PYTHON = ROOT / ".venv-tools" / "bin" / "python"
LOCKS = {"requirements.txt": "requirements.lock", "requirements-dev.txt": "requirements-dev.lock",
         "requirements-tools.txt": "requirements-tools.lock"}
HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}")


def direct_requirements(name: str) -> dict[str, Requirement]:
    """The requirements a requirements*.txt names, following its `-r` includes."""
    found: dict[str, Requirement] = {}
    for raw in (ROOT / name).read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line.startswith("-r"):
            found.update(direct_requirements(line[2:].strip()))
        elif line:
            requirement = Requirement(line)
            found[canonicalize_name(requirement.name)] = requirement
    return found


def locked(name: str) -> dict[str, tuple[str, list[str]]]:
    """A lock file's entries: canonical name -> (pinned version, its hashes)."""
    entries: dict[str, tuple[str, list[str]]] = {}
    text = (ROOT / name).read_text().replace("\\\n", " ")
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        spec, _, options = line.partition(" ")
        match = re.fullmatch(r"([A-Za-z0-9._-]+)==([^\s;]+)", spec)
        assert match, f"{name}: not a `name==version` pin: {raw.strip()[:120]}"
        hashes = HASH.findall(options)
        assert hashes, f"{name}: {spec} has no sha256 hash"
        entries[canonicalize_name(match[1])] = (match[2], hashes)
    return entries


@pytest.mark.parametrize("source", sorted(LOCKS))
def test_each_lock_pins_every_requirement_with_hashes(source: str) -> None:
    lock = locked(LOCKS[source])
    for name, requirement in direct_requirements(source).items():
        assert name in lock, f"{requirement} is in {source} but not in {LOCKS[source]}: run `make lock`"
        version, _ = lock[name]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{source} asks for {requirement}, {LOCKS[source]} pins {version}: run `make lock`")


def test_the_dev_lock_holds_the_runtime_locks_versions_and_hashes() -> None:
    runtime, dev = locked("requirements.lock"), locked("requirements-dev.lock")
    differ = {name: (pin[0], dev.get(name, ("missing", []))[0]) for name, pin in runtime.items()
              if dev.get(name, ("", []))[0] != pin[0] or set(dev[name][1]) != set(pin[1])}
    assert not differ, f"the tests would run other releases than the app (runtime, dev): {differ}"


def test_this_venv_has_the_locked_releases() -> None:
    """The venv the tests run in (built by `make test`) holds exactly the dev lock's versions."""
    installed: dict[str, str] = {canonicalize_name(dist.metadata["Name"]): dist.version
                                 for dist in metadata.distributions()}
    wrong = {name: (version, installed.get(name)) for name, (version, _) in locked("requirements-dev.lock").items()
             if installed.get(name) != version}
    assert not wrong, f"locked vs installed: {wrong}"


def pip_installs(text: str) -> list[str]:
    joined = text.replace("\\\n", " ")
    return [line for line in joined.splitlines() if re.search(r"\bpip install\b|\$\(PIP_LOCKED\)", line)]


def test_the_makefile_and_the_dockerfile_install_only_from_the_locks_in_hash_checking_mode() -> None:
    makefile = (ROOT / "Makefile").read_text()
    for name in ("PIP_LOCKED", "UV_LOCKED"):  # pip, and uv where it can be had (issue 29): the same mode
        locked_install = re.search(rf"^{name}\s*:=\s*(.+)$", makefile, re.M)
        assert locked_install and "pip install --require-hashes --no-deps --only-binary :all:" in locked_install[1]
    # every lock goes through one macro: uv in hash-checking mode, else pip in it, each followed by a check
    macro = re.search(r"^locked = (.+?[^\\])$", makefile, re.M | re.S)
    assert macro, "the Makefile's `locked` macro"
    body = macro[1].replace("\\\n", " ")
    assert "$(UV) $(UV_LOCKED)" in body and "-r $(2)" in body and "$(UV) pip check" in body, body
    assert "$(1)/bin/$(PIP_LOCKED) -r $(2)" in body and "$(1)/bin/pip check" in body, body
    calls = re.findall(r"^\t@?\$\(call locked,[^,]+,(\S+?)\)", makefile, re.M)
    assert sorted(calls) == sorted(LOCKS.values()), calls
    # the one other install: uv itself, from its own lines of the tools lock, by pip with their hashes
    installs = [line for line in pip_installs(makefile)
                if not line.startswith(("PIP_LOCKED", "UV_LOCKED", "locked ="))]
    assert installs == ["\t-$(TOOLS)/bin/$(PIP_LOCKED) --quiet -r $(TOOLS)/uv.lock"], installs

    dockerfile = (ROOT / "Dockerfile").read_text()
    (install,) = pip_installs(dockerfile)
    assert "--require-hashes" in install and "--no-deps" in install and "-r requirements.lock" in install, install
    assert "pip check" in install
    assert re.search(r"^COPY .*requirements\.lock", dockerfile, re.M)


def test_ci_runs_the_audit() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^timeout .* make audit \|\| audit_status=\$\?$", ci, re.M), "CI must run `make audit`"
    assert 'status=$audit_status' in ci, "a failed audit must fail the job"


# -- the audit, against a local OSV stand-in ------------------------------------------------------

@dataclass
class OsvStandIn:
    """A local server speaking OSV's POST /v1/query: advisories by (package, version)."""

    url: str
    advisories: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    queries: list[dict[str, Any]] = field(default_factory=list)

    def advise(self, package: str, version: str, vuln_id: str, *, fixed: str | None) -> None:
        events: list[dict[str, str]] = [{"introduced": "0"}, *([{"fixed": fixed}] if fixed else [])]
        self.advisories.setdefault((package, version), []).append({
            "id": vuln_id, "aliases": [f"CVE-{vuln_id}"], "summary": f"{package} {version} is unsafe",
            "affected": [{"package": {"name": package, "ecosystem": "PyPI"},
                          "ranges": [{"type": "ECOSYSTEM", "events": events}]}]})


@pytest.fixture
def osv() -> Iterator[OsvStandIn]:
    stand_in: OsvStandIn

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            query = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            stand_in.queries.append(query)
            vulns = stand_in.advisories.get((query["package"]["name"], query["version"]), [])
            body = json.dumps({"vulns": vulns} if vulns else {}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    stand_in = OsvStandIn(url=f"http://127.0.0.1:{server.server_address[1]}/v1/query")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield stand_in
    finally:
        server.shutdown()
        server.server_close()


def audit(locks: list[str], *args: str, osv_url: str, cache: Path) -> subprocess.CompletedProcess[str]:
    if not TOOLS_PYTHON.exists():
        if os.environ.get("CI"):
            pytest.fail(".venv-tools is missing in CI: `make test` builds it from requirements-tools.lock")
        pytest.skip(".venv-tools not built (`make test` or `make audit` builds it)")
    return subprocess.run([str(TOOLS_PYTHON), str(ROOT / ".ci" / "audit.py"), *(str(ROOT / n) for n in locks),
                           "--service", "osv", "--osv-url", osv_url, "--cache-dir", str(cache), "--timeout", "5",
                           *args], capture_output=True, text=True, timeout=300, cwd=ROOT)


def test_a_vulnerability_with_a_fixed_release_fails_the_audit(osv: OsvStandIn, tmp_path: Path) -> None:
    osv.advise("requests", "2.19.0", "CANARY-1", fixed="2.20.0")
    version = locked("requirements-tools.lock")["urllib3"][0]
    osv.advise("urllib3", version, "PLANTED-1", fixed="99.0.0")
    done = audit(["requirements-tools.lock"], osv_url=osv.url, cache=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    (line,) = [line for line in done.stderr.splitlines() if "PLANTED-1" in line]
    assert line.strip().startswith(f"urllib3 {version}:") and "fixed in 99.0.0" in line, done.stderr
    assert "SKIPPED" not in done.stderr


def test_a_vulnerability_without_a_fix_is_a_warning_and_every_locked_release_is_asked(
        osv: OsvStandIn, tmp_path: Path) -> None:
    osv.advise("requests", "2.19.0", "CANARY-1", fixed="2.20.0")
    version = locked("requirements.lock")["numpy"][0]
    osv.advise("numpy", version, "UNFIXED-1", fixed=None)
    locks = ["requirements.lock", "requirements-dev.lock", "requirements-tools.lock"]
    done = audit(locks, osv_url=osv.url, cache=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    (line,) = [line for line in done.stdout.splitlines() if "UNFIXED-1" in line]
    assert line.strip().startswith(f"numpy {version}:") and "no fixed release yet" in line, done.stdout
    assert "vulnerability audit passed" in done.stdout
    expected = {(name, version) for lock in locks for name, (version, _) in locked(lock).items()}
    asked = {(query["package"]["name"], query["version"]) for query in osv.queries}
    assert expected <= asked, f"never asked about: {sorted(expected - asked)[:10]}"
    assert f"{len(expected)} locked releases checked" in done.stdout


def test_a_service_that_knows_no_advisory_for_the_canary_is_a_loud_skip_not_a_pass(
        osv: OsvStandIn, tmp_path: Path) -> None:
    """Like PyPI's JSON API answering 404 here: pip-audit alone would print 'No known vulnerabilities'."""
    done = audit(["requirements-tools.lock"], osv_url=osv.url, cache=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "vulnerability audit SKIPPED" in done.stderr and "NOT checked" in done.stderr
    assert "named no advisory for requests==2.19.0" in done.stderr
    assert "passed" not in done.stdout + done.stderr
    assert len(osv.queries) == 1, "the lock files are not audited against a service that failed the canary"


def test_an_unreachable_service_is_skipped_loudly_or_fails_when_a_real_audit_is_required(tmp_path: Path) -> None:
    closed = "http://127.0.0.1:9/v1/query"  # discard port: nothing listens
    done = audit(["requirements-tools.lock"], osv_url=closed, cache=tmp_path)
    assert done.returncode == 0 and "vulnerability audit SKIPPED" in done.stderr, done.stderr
    assert "osv: " in done.stderr and "127.0.0.1" in done.stderr
    required = audit(["requirements-tools.lock"], "--require-service", osv_url=closed, cache=tmp_path)
    assert required.returncode == 3 and "vulnerability audit SKIPPED" in required.stderr, required.stderr
