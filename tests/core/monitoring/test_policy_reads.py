"""A command reads policies.yaml once: ``cli.py drift`` and ``cli.py promote`` each open it at most once,
however many steps consult the model's policy (the workspace's ``Policies`` is cached until the file changes).

Each command runs as a user runs it (a process), with an audit hook counting the opens of the file.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support import aliases
from tests.support.drift import shifted

ROOT = Path(__file__).resolve().parents[3]
COUNTING = """
import runpy, sys
target = sys.argv[1]
opened = []
def hook(event, args):
    if event == "open" and args and str(args[0]) == target:
        opened.append(1)
sys.addaudithook(hook)
sys.argv = ["cli.py", *sys.argv[2:]]
try:
    runpy.run_path("cli.py", run_name="__main__")
finally:
    print(f"policies.yaml opened {len(opened)} time(s)", file=sys.stderr)
"""


def run_counted(settings, *args: str) -> tuple[subprocess.CompletedProcess, int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEANOPS_")}
    env |= {"LEANOPS_HOME": str(settings.home), "LEANOPS_DB_URL": settings.db_url, "LEANOPS_SCHEDULER": "off"}
    target = str(settings.home / "policies.yaml")
    done = subprocess.run([sys.executable, "-c", COUNTING, target, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    line = [x for x in done.stderr.splitlines() if x.startswith("policies.yaml opened")][-1]
    return done, int(line.split()[2])


def test_drift_and_promote_commands_open_policies_yaml_at_most_once(trained, tmp_path):
    settings = trained.settings
    settings.policies.write_default()  # the file as init writes it
    batch = tmp_path / "batch.csv"
    shifted().to_csv(batch, index=False)

    drift, opened = run_counted(settings, "drift", "churn", "--current", str(batch), "--json")
    assert drift.returncode in (0, 1), drift.stderr
    print(f"cli.py drift: policies.yaml opened {opened} time(s)")
    assert opened == 1

    aliases.move(settings, model="churn", alias="champion", version=None)  # so that v1 can be promoted again
    promote, opened = run_counted(settings, "promote", "churn", "1", "--force", "--reason", "counting reads",
                                  "--json")
    assert promote.returncode == 0, promote.stderr
    print(f"cli.py promote: policies.yaml opened {opened} time(s)")
    assert opened == 1
