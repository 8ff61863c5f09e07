"""`cli.py train`: the design.md contract — one JSON document, exit 0 / 1 (a check said no) / 2 (bad input)."""

from __future__ import annotations

import json

import pytest

import cli
from tests.support.training import *  # noqa: F403
from tests.support.training import add_dataset, small_churn


@pytest.fixture
def cli_env(monkeypatch, workspace):
    monkeypatch.setenv("LEANOPS_HOME", str(workspace.home))
    monkeypatch.setenv("LEANOPS_DB_URL", workspace.db_url)
    return workspace


def train(capsys, *args: str, dataset: str = "churn") -> tuple[int, str, str]:
    code = cli.main(["train", "--dataset", dataset, "--target", "churn", *args, "--json"])
    out, err = capsys.readouterr()
    return code, out, err


def test_train_prints_one_json_document(capsys, factory, cli_env):
    add_dataset(factory, cli_env, small_churn())
    code, out, _ = train(capsys, "--model", "random_forest", "--param", "n_estimators=20", "--sensitive", "gender",
                         "--model-name", "churn-rf")
    assert code == 0
    doc = json.loads(out)
    assert set(doc) == {"run_id", "model_name", "model_version", "metrics", "gates"}
    assert (doc["model_name"], doc["model_version"]) == ("churn-rf", 1)
    assert doc["metrics"]["f1"] > 0.8 and "demographic_parity_ratio" in doc["metrics"]
    assert isinstance(doc["gates"]["passed"], bool)
    assert {c["name"] for c in doc["gates"]["checks"]} >= {"metric f1", "data certificate passed"}


@pytest.mark.parametrize(("args", "reason"), [
    (["--target", "chrun"], "error: target 'chrun' is not a column of churn:1; columns are: customer_age"),
    (["--param", "n_estimators"], "error: --param 'n_estimators' is not KEY=VALUE"),
    (["--param", "n_estimators=1"], "error: parameter n_estimators=1 is out of range; allowed: 10 … 1000"),
    (["--dataset", "churn:7"], "error: dataset 'churn' has no version 7; the only version is 1"),
    (["--model", "svm"], "error: model kind 'svm' is unknown"),
    (["--task", "regression", "--target", "region"], "regression needs a numeric target"),
])
def test_bad_input_exits_2_with_a_one_line_reason(capsys, factory, cli_env, args, reason):
    add_dataset(factory, cli_env, small_churn())
    code = cli.main(["train", "--dataset", "churn", "--target", "churn", *args, "--json"])
    out, err = capsys.readouterr()
    assert code == 2 and json.loads(out) == {"error": err.removeprefix("error: ").rstrip("\n")}  # one document
    assert err.startswith("error: ") and reason in err and err.count("\n") == 1


def test_failed_certificate_exits_1(capsys, factory, cli_env):
    add_dataset(factory, cli_env, small_churn())
    bad = small_churn(seed=3)
    bad.loc[:4, "region"] = "moon"
    add_dataset(factory, cli_env, bad)
    code, out, err = train(capsys, dataset="churn:2")  # "churn" alone is churn:1, the newest certified one
    assert code == 1 and "certificate failed (allowed values region" in json.loads(out)["error"]
    assert err.startswith("error: dataset churn:2's certificate failed")
