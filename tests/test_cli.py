"""The CLI contract: one JSON document, exit codes 0/1/2, one-line reasons, audit verify on a tampered row."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.training import *  # noqa: F403  (the workspace fixtures)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def cli(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEANOPS_")}
    env |= {"LEANOPS_HOME": str(tmp_path / "ws"), "LEANOPS_ADMIN_PASSWORD": "admin-pass-123"}

    def run(*args: str, stdin: str = "", **extra_env: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "cli.py", *args], cwd=ROOT, env=env | extra_env, input=stdin,
                              capture_output=True, text=True, timeout=120)

    run.home = tmp_path / "ws"
    return run


def test_init_user_token_and_audit_verify(cli):
    first = cli("init", "--json")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["admin_user"] == "admin"
    assert json.loads(cli("init", "--json").stdout)["admin_user"] is None, "init is idempotent"

    added = cli("user", "add", "sam", "--role", "scientist", "--json", stdin="sam-pass-123\n")
    assert json.loads(added.stdout) == {"username": "sam", "role": "scientist"}
    token = json.loads(cli("token", "create", "--role", "viewer", "--name", "ci", "--owner", "admin", "--json").stdout)
    assert token["token"].startswith("lo_") and token["role"] == "viewer" and token["name"] == "ci"

    ok = cli("audit", "verify", "--json")
    assert ok.returncode == 0 and json.loads(ok.stdout)["ok"] is True

    with sqlite3.connect(cli.home / "leanops.db") as conn:  # what an attacker with the sqlite3 shell does
        conn.execute("UPDATE audit_events SET details = '{\"role\": \"viewer\"}' WHERE seq = 3")
    broken = cli("audit", "verify", "--json")
    doc = json.loads(broken.stdout)
    assert broken.returncode == 1
    assert doc["ok"] is False and doc["first_bad"] == 3 and doc["checked"] == 2
    with sqlite3.connect(cli.home / "leanops.db") as conn:  # every verdict is recorded, as the page and job do
        recorded = conn.execute("SELECT actor, details FROM audit_events WHERE action = 'audit.verified' "
                                "ORDER BY seq").fetchall()
    assert [(actor.startswith("cli:"), json.loads(details)["ok"]) for actor, details in recorded] == [
        (True, True), (True, False)]


def test_a_generated_admin_password_is_shown_once_stored_nowhere_and_must_be_changed(cli):
    first = cli("init", LEANOPS_ADMIN_PASSWORD="")
    assert first.returncode == 0, first.stderr
    line = next(x for x in first.stdout.splitlines() if x.startswith("admin user: admin  password: "))
    password = line.split("password: ")[1].split()[0]
    assert len(password) >= 12 and "the first login asks for a new one" in line
    again = cli("init", "--json", LEANOPS_ADMIN_PASSWORD="")
    assert password not in again.stdout + again.stderr and json.loads(again.stdout)["admin_password"] is None
    for path in cli.home.rglob("*"):  # not in the workspace: not the DB, not a log, not a key file
        assert not path.is_file() or password.encode() not in path.read_bytes(), path
    with sqlite3.connect(cli.home / "leanops.db") as conn:
        assert conn.execute("SELECT username, must_change_password FROM users").fetchall() == [("admin", 1)]


@pytest.mark.parametrize("args, stdin, message", [
    (("user", "add", "x y", "--role", "viewer"), "password-123\n", "username 'x y' is not allowed"),
    (("user", "add", "zed", "--role", "boss"), "password-123\n", "role 'boss' is unknown"),
    (("user", "add", "zed", "--role", "viewer"), "short\n", "at least 8"),
    (("token", "create", "--role", "root", "--owner", "admin"), "", "role 'root' is unknown"),
    (("token", "create", "--role", "viewer", "--owner", "nobody"), "", "no user named 'nobody'"),
])
def test_bad_input_exits_2_with_one_line(cli, args, stdin, message):
    cli("init")
    result = cli(*args, "--json", stdin=stdin)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert message in json.loads(result.stdout)["error"], "--json: exactly one JSON document on stdout"
    plain = cli(*args, stdin=stdin)
    assert plain.returncode == 2 and plain.stdout == "" and message in plain.stderr


@pytest.mark.parametrize("args, message", [
    (("promote", "--json"), "the following arguments are required: model, version"),
    (("promote", "m", "two", "--json"), "argument version: invalid int value: 'two'"),
    (("bogus", "--json"), "invalid choice: 'bogus'"),
    (("token", "create", "--role", "viewer", "--json"), "the following arguments are required: --owner"),
    (("promote", "m", "2", "--json"), "model 'm' has no version 2"),
])
def test_every_exit_2_under_json_prints_one_json_error(cli, args, message):
    """Refused command lines (argparse) and refused commands alike: ``{"error": …}`` on stdout, the line on stderr."""
    cli("init")
    result = cli(*args)
    assert result.returncode == 2, result.stderr
    doc = json.loads(result.stdout)  # exactly one document: json.loads refuses trailing text
    assert list(doc) == ["error"] and message in doc["error"]
    assert message in result.stderr


def test_bad_settings_and_unreachable_database_are_explained(cli):
    bad = cli("init", LEANOPS_DB_URL="not a url")
    assert bad.returncode == 2 and "LEANOPS_DB_URL" in bad.stderr
    bad = cli("init", LEANOPS_SCHEDULER="sometimes")
    assert bad.returncode == 2 and "LEANOPS_SCHEDULER" in bad.stderr
    down = cli("init", LEANOPS_DB_URL="postgresql+psycopg://nobody@127.0.0.1:9/leanops")
    assert down.returncode == 2 and "metadata database is unavailable" in down.stderr


def test_init_makes_the_secret_key_file_and_rotate_secret_key_replaces_it(cli):
    assert cli("init").returncode == 0
    key_file = cli.home / "secret.key"
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    before = key_file.read_text()
    rotated = cli("rotate-secret-key", "--json")
    assert rotated.returncode == 0, rotated.stderr
    doc = json.loads(rotated.stdout)
    assert doc["generated"] is True and doc["key"] == str(key_file)
    after = key_file.read_text()
    assert after != before and len(after.split()) == 1 and oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert before.strip() not in rotated.stdout + rotated.stderr and after.strip() not in rotated.stdout
    refused = cli("rotate-secret-key", "--json", LEANOPS_SECRET_KEY="not-a-key")
    assert refused.returncode == 2 and "LEANOPS_SECRET_KEY is not a Fernet key" in refused.stderr
    assert key_file.read_text() == after


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_promotion_that_loses_the_race_exits_1_with_one_json_document(factory, workspace):
    """Another promotion moves the champion to the same version while this one waits for the model's lock:
    "became the champion meanwhile" is a lost race (exit 1), not bad input (exit 2)."""
    import time

    from core.actors import cli_actor
    from core.platform import locks
    from core.platform.database import transaction
    from core.registry import state
    from tests.support.training import add_dataset, small_churn
    from tests.support.versions import recorded

    data = add_dataset(factory, workspace, small_churn())
    version = recorded(factory, workspace, data, model="m", metrics={"f1": 0.9})
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEANOPS_")} | {
        "LEANOPS_HOME": str(workspace.home), "LEANOPS_DB_URL": workspace.db_url, "MLFLOW_DISABLE_TELEMETRY": "true"}
    with transaction(factory) as s:
        locks.hold(s, "model:m")  # the other promotion, mid-way: holds the model while it moves the alias
        cli = subprocess.Popen([sys.executable, "cli.py", "promote", "m", str(version), "--json"], cwd=ROOT,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(12)  # the CLI starts, finds no champion, passes its gates and waits for the lock
        state.move(s, actor=cli_actor(), model="m", alias="champion", to=version, action="promote",
                   reason="the other promotion")  # committed with the lock's release
    out, err = cli.communicate(timeout=120)
    assert cli.returncode == 1, err
    assert json.loads(out) == {"error": f"m v{version} became the champion meanwhile"}
    assert "became the champion meanwhile" in err


def _rewrite_consistently(db: Path, seq: int, details: str) -> None:
    """Edit one event in SQL and recompute every later hash and the head, as an attacker with the sqlite3
    shell and the published hash format would (no LeanOps code)."""
    import hashlib

    def payload(row: tuple) -> bytes:
        seq_, ts, actor, action, subject, details_ = row
        ts_text = ts.replace(" ", "T") + "Z"
        return ('{"action":' + json.dumps(action, ensure_ascii=False)
                + ',"actor":' + json.dumps(actor, ensure_ascii=False) + ',"details":' + details_
                + ',"seq":' + str(seq_) + ',"subject":'
                + json.dumps(subject, ensure_ascii=False) + ',"ts":"' + ts_text + '"}').encode()

    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE audit_events SET details = ? WHERE seq = ?", (details, seq))
        prev = conn.execute("SELECT prev_hash FROM audit_events WHERE seq = ?", (seq,)).fetchone()[0]
        rows = conn.execute("SELECT seq, ts, actor, action, subject, details FROM audit_events WHERE seq >= ? "
                            "ORDER BY seq", (seq,)).fetchall()
        for row in rows:
            digest = hashlib.sha256(prev.encode() + payload(row)).hexdigest()
            conn.execute("UPDATE audit_events SET prev_hash = ?, hash = ? WHERE seq = ?", (prev, digest, row[0]))
            prev = digest
        conn.execute("UPDATE audit_head SET hash = ? WHERE id = 1", (prev,))


def test_audit_verify_names_the_checkpoint_a_consistent_rewrite_no_longer_matches(cli):
    init = cli("init", "--json")
    assert init.returncode == 0, init.stderr
    public = json.loads(init.stdout)["audit_public_key"]
    assert public.startswith("ed25519:") and (cli.home / "audit.pub").read_text().strip() == public
    assert oct((cli.home / "audit.key").stat().st_mode & 0o777) == "0o600"
    for name in ("ann", "bob", "cy"):
        assert cli("user", "add", name, "--role", "viewer", stdin=f"{name}-pass-123\n").returncode == 0
    written = cli("audit", "checkpoint", "--json")
    assert written.returncode == 0, written.stderr
    cp = json.loads(written.stdout)
    assert cp["n"] == 1 and cp["signature"] and cp["log"] == str(cli.home / "audit-checkpoints.jsonl")
    assert cli("audit", "verify", "--json").returncode == 0

    _rewrite_consistently(cli.home / "leanops.db", 3, '{"role":"admin"}')
    broken = cli("audit", "verify", "--json")
    doc = json.loads(broken.stdout)
    assert broken.returncode == 1, broken.stdout
    assert doc["ok"] is False and doc["checkpoint"] == 1 and "checkpoint 1" in doc["reason"]
    assert doc["latest_checkpoint"]["signature"] == cp["signature"]


def test_audit_verify_catches_the_last_ten_events_deleted_and_the_head_fixed(cli):
    assert cli("init").returncode == 0
    for i in range(12):
        assert cli("token", "create", "--role", "viewer", "--name", f"t{i}", "--owner", "admin").returncode == 0
    assert cli("audit", "checkpoint").returncode == 0
    with sqlite3.connect(cli.home / "leanops.db") as conn:
        head = conn.execute("SELECT seq FROM audit_head").fetchone()[0]
        conn.execute("DELETE FROM audit_events WHERE seq > ?", (head - 10,))
        seq, digest = conn.execute("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1").fetchone()
        conn.execute("UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1", (seq, digest))
    broken = cli("audit", "verify", "--json")
    doc = json.loads(broken.stdout)
    assert broken.returncode == 1 and doc["ok"] is False
    assert doc["checkpoint"] == 1 and "truncated" in doc["reason"] and doc["first_bad"] == seq + 1
