"""The CLI contract: one JSON document, exit codes 0/1/2, one-line reasons, audit verify on a tampered row."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

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
    token = json.loads(cli("token", "create", "--role", "viewer", "--name", "ci", "--json").stdout)
    assert token["token"].startswith("lo_") and token["role"] == "viewer" and token["name"] == "ci"

    ok = cli("audit", "verify", "--json")
    assert ok.returncode == 0 and json.loads(ok.stdout)["ok"] is True

    with sqlite3.connect(cli.home / "leanops.db") as conn:  # what an attacker with the sqlite3 shell does
        conn.execute("UPDATE audit_events SET details = '{\"role\": \"viewer\"}' WHERE seq = 3")
    broken = cli("audit", "verify", "--json")
    doc = json.loads(broken.stdout)
    assert broken.returncode == 1
    assert doc["ok"] is False and doc["first_bad"] == 3 and doc["checked"] == 2


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
    (("token", "create", "--role", "root"), "", "role 'root' is unknown"),
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
