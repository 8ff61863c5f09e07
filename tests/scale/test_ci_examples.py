"""The GitHub Actions examples parse, run the documented CLI commands, and act on promote's exit codes."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from cli import build_parser
from core.settings import Settings

FOLDER = Path(__file__).resolve().parents[2] / "examples" / "github-actions"


def load(name: str) -> dict:
    doc = yaml.safe_load((FOLDER / name).read_text())
    doc["on"] = doc.pop(True, doc.get("on"))  # YAML 1.1 reads the key `on` as true
    return doc


def scripts(doc: dict) -> list[str]:
    return [step["run"] for job in doc["jobs"].values() for step in job.get("steps", []) if "run" in step]


def cli_calls(script: str) -> list[list[str]]:
    """Each `python cli.py …` command line of a script, shell variables left as placeholders."""
    joined = script.replace("\\\n", " ")
    calls = []
    for line in joined.splitlines():
        if "python cli.py" in line:
            words = shlex.split(line.split("python cli.py", 1)[1].split("|")[0].split(">")[0])
            calls.append([w if not w.startswith("$") else "1" for w in words])
    return calls


@pytest.mark.parametrize("name", ["weekly-retrain.yml", "promotion-gate.yml"])
def test_workflow_is_valid_and_uses_only_real_cli_commands_and_settings(name: str) -> None:
    doc = load(name)
    assert doc["name"] and doc["jobs"] and doc["on"]
    fields = {f"LEANOPS_{f.upper()}" for f in Settings.model_fields}
    assert {k for k in doc["env"] if k.startswith("LEANOPS_")} <= fields
    parser = build_parser()
    calls = [call for script in scripts(doc) for call in cli_calls(script)]
    assert calls, "the workflow should call the CLI"
    for call in calls:
        parser.parse_args(call)  # an option the CLI does not have exits here
        assert "--json" in call


def test_weekly_retrain_is_scheduled_and_hands_over_to_the_gate() -> None:
    doc = load("weekly-retrain.yml")
    assert re.fullmatch(r"[\d*/,-]+ [\d*/,-]+ \* \* [0-6]", doc["on"]["schedule"][0]["cron"])
    assert "workflow_dispatch" in doc["on"]
    assert doc["jobs"]["promote"]["uses"].endswith("promotion-gate.yml")
    assert doc["jobs"]["promote"]["needs"] == "retrain"
    outputs = doc["jobs"]["retrain"]["outputs"]
    assert set(outputs) == {"model", "version"}
    assert any("model_version" in s and "model_name" in s for s in scripts(doc))  # fields of `train --json`


def test_promotion_gate_maps_the_exit_codes() -> None:
    doc = load("promotion-gate.yml")
    assert set(doc["on"]["workflow_call"]["inputs"]) == {"model", "version"}
    script = scripts(doc)[-1]
    assert "|| status=$?" in script  # the exit code is kept, not lost to `set -e`
    assert re.search(r"0\)[^;]*promoted", script) and re.search(r"1\)[^;]*blocked[^\n]*exit 1", script)
    assert re.search(r"\*\)[^\n]*exit \"\$status\"", script)
