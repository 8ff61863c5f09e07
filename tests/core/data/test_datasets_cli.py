"""`python cli.py dataset add|list`: the JSON of design.md, exit 2 with a one-line reason, nothing stored."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from tests.support.paths import ROOT


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture):
    """The real CLI entry (``cli.main``), in this process for speed; one test below runs it as a subprocess."""
    import cli as entry

    env = {"LEANOPS_HOME": str(tmp_path / "ws"), "LEANOPS_DB_URL": db_url, "LEANOPS_MAX_UPLOAD_MB": "1"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)

    def run(*args: str) -> Result:
        capsys.readouterr()
        code = entry.main(list(args))
        out, err = capsys.readouterr()
        return Result(code, out, err)

    run.home = tmp_path / "ws"
    run.env = env
    return run


def test_add_prints_the_contract_and_identical_content_adds_nothing(cli, tmp_path: Path) -> None:
    data = tmp_path / "churn.csv"
    pd.DataFrame({"age": [20, 30, 40, 50], "plan": ["a", "b", "a", "b"]}).to_csv(data, index=False)
    added = cli("dataset", "add", "churn", str(data), "--json")
    assert added.returncode == 0, added.stderr
    doc = json.loads(added.stdout)
    assert {k: doc[k] for k in ("name", "version", "rows", "columns")} == {
        "name": "churn", "version": 1, "rows": 4, "columns": ["age", "plan"]}
    assert len(doc["sha256"]) == 64 and doc["quality"]["passed"] is True and doc["created"] is True
    assert all(set(c) == {"check", "column", "passed", "observed", "expected"} for c in doc["quality"]["checks"])
    assert (cli.home / "datasets" / f"{doc['sha256']}.parquet").is_file()

    again = cli("dataset", "add", "churn", str(data))
    assert again.returncode == 0
    sha = doc["sha256"][:12]
    assert again.stdout.strip() == f"This content is already churn version 1 (sha256 {sha}); nothing new."

    listed = json.loads(cli("dataset", "list", "--json").stdout)
    assert [(d["name"], d["versions"], d["latest_rows"], d["latest_passed"]) for d in listed] == [
        ("churn", 1, 4, True)]
    versions = json.loads(cli("dataset", "list", "churn", "--json").stdout)
    assert [(v["version"], v["sha256"], v["source"]) for v in versions] == [(1, doc["sha256"], "cli:churn.csv")]
    assert versions[0]["created_by"].startswith("cli:")
    # the new version asked for what follows it in the loop, as a page or API upload does; the same content did not
    assert queued_follow_ups(cli.env["LEANOPS_DB_URL"]) == [{"dataset": "churn", "version": 1, "via_api": False}]


def queued_follow_ups(db_url: str) -> list[dict]:
    from core.platform import job_queue
    from db.session import make_engine, make_session_factory

    engine = make_engine(db_url)
    try:
        with make_session_factory(engine)() as s:
            return [job.params for job in job_queue.list_jobs(s, kind="retrain.consider")]
    finally:
        engine.dispose()


def test_a_failing_certificate_is_still_a_registered_version(cli, tmp_path: Path) -> None:
    good, bad = tmp_path / "v1.csv", tmp_path / "v2.csv"
    pd.DataFrame({"age": range(20, 60), "plan": ["a", "b"] * 20}).to_csv(good, index=False)
    pd.DataFrame({"age": range(200, 240), "plan": ["a", "zzz"] * 20}).to_csv(bad, index=False)
    assert cli("dataset", "add", "churn", str(good)).returncode == 0
    second = cli("dataset", "add", "churn", str(bad))
    assert second.returncode == 0, second.stderr
    lines = second.stdout.strip().splitlines()
    assert lines[0] == "Registered churn version 2: 40 rows, certificate failed 2 check(s)."
    assert any(line.startswith("  ✗ range age: min 200, max 239") for line in lines)


MALFORMED = {
    "empty.csv": b"",
    "binary.csv": b"\x00\x01\x02PK\x03\x04" * 50,
    "latin1.csv": "a,b\n1,caf\xe9\n".encode("latin-1"),
    "dupes.csv": b"a,a\n1,2\n",
    "blank.csv": b"a,\n1,2\n",
    "ragged.csv": b"a,b\n1,2\n3\n",
    "header.csv": b"a,b\n",
    "big.csv": b"a,b\n" + b"123456,abcdef\n" * 90_000,
    "fake.parquet": b"a,b\n1,2\n",
}


@pytest.mark.parametrize("filename", MALFORMED)
def test_malformed_files_exit_2_with_one_line_and_store_nothing(cli, tmp_path: Path, filename: str) -> None:
    path = tmp_path / filename
    path.write_bytes(MALFORMED[filename])
    result = cli("dataset", "add", "churn", str(path), "--json")
    assert result.returncode == 2
    assert json.loads(result.stdout) == {"error": result.stderr.removeprefix("error: ").rstrip("\n")}  # one document
    assert result.stderr.startswith(f"error: {filename} ") and result.stderr.count("\n") == 1, result.stderr
    assert not (cli.home / "datasets").exists() or not list((cli.home / "datasets").iterdir())
    assert json.loads(cli("dataset", "list", "--json").stdout) == []


def test_bad_names_missing_files_and_unknown_datasets_exit_2(cli, tmp_path: Path) -> None:
    path = tmp_path / "ok.csv"
    path.write_text("a\n1\n")
    for args, reason in [
        (("dataset", "add", "../x", str(path)), "error: dataset name '../x' is not allowed"),
        (("dataset", "add", "x", str(tmp_path / "nope.csv")), "does not exist or is not a file"),
        (("dataset", "list", "nope"), "error: no dataset named 'nope'; there are no datasets yet"),
    ]:
        result = cli(*args)
        assert result.returncode == 2 and result.stderr.startswith("error: "), result.stderr
        assert reason in result.stderr and result.stderr.count("\n") == 1


def test_as_a_subprocess_a_malformed_file_exits_2(cli, tmp_path: Path) -> None:
    path = tmp_path / "ragged.csv"
    path.write_bytes(MALFORMED["ragged.csv"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEANOPS_")} | cli.env
    result = subprocess.run([sys.executable, "cli.py", "dataset", "add", "churn", str(path), "--json"], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert json.loads(result.stdout) == {"error": result.stderr.removeprefix("error: ").rstrip("\n")}
    assert result.stderr == "error: ragged.csv has ragged rows: line 3 has 1 field where the header has 2 ('3')\n"
