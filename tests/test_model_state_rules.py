"""Who may read what (issue 23's counts): MLflow's aliases only through the registry port, the alias tables only
through their owner, the environment only in core/settings.py. Run with ``-s`` to see the counts."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "core"
PORT = "core/platform/registry_port.py"
OWNER = "core/registry/state.py"
ALIAS_TABLES = {"AliasMove", "CurrentAlias"}
MLFLOW_ALIAS_READS = {"aliases"}  # the property of MLflow's RegisteredModel / ModelVersion
FORBIDDEN_PARAMS = {"home", "mlflow_uri", "uri", "store_root"}


def _modules():
    for path in sorted(CORE.rglob("*.py")):
        yield path.relative_to(ROOT).as_posix(), ast.parse(path.read_text(), filename=str(path))


def test_mlflow_aliases_are_read_only_in_the_registry_port():
    sites = []
    for rel, tree in _modules():
        if rel == "core/training/catalog.py":  # a model kind's aliases ("rf" for random_forest), not MLflow's
            continue
        calls = {id(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}  # the port's own methods
        sites += sorted({(rel, node.lineno) for node in ast.walk(tree) if isinstance(node, ast.Attribute)
                         and node.attr in MLFLOW_ALIAS_READS and id(node) not in calls})
        sites += sorted({(rel, node.lineno) for node in ast.walk(tree) if isinstance(node, ast.Attribute)
                         and node.attr == "get_model_version_by_alias"})
    print(f"\nMLflow alias reads in core: {len(sites)} ({', '.join(f'{r}:{n}' for r, n in sites)})")
    assert len(sites) <= 3 and all(rel == PORT for rel, _ in sites), sites


def test_only_the_owner_reads_or_writes_the_alias_tables():
    sites = [(rel, node.lineno) for rel, tree in _modules() if rel != OWNER for node in ast.walk(tree)
             if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
             and node.value.id in ALIAS_TABLES
             or isinstance(node, ast.Call) and any(isinstance(a, ast.Name) and a.id in ALIAS_TABLES
                                                   for a in node.args)]
    print(f"\nalias-table queries outside {OWNER}: {len(sites)}")
    assert sites == []


def test_core_reads_the_environment_only_in_settings_and_takes_no_workspace_paths():
    environment, params = [], []
    for rel, tree in _modules():
        for node in ast.walk(tree):
            if rel != "core/settings.py" and (
                    isinstance(node, ast.Attribute) and node.attr in {"environ", "getenv"}
                    or isinstance(node, ast.Name) and node.id == "get_settings"):
                environment.append(f"{rel}:{node.lineno}")
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                names = [a.arg for a in node.args.args + node.args.kwonlyargs + node.args.posonlyargs]
                params += [f"{rel}:{node.lineno} {node.name}({n})" for n in names if n in FORBIDDEN_PARAMS]
    print(f"\nenvironment reads outside core/settings.py: {len(environment)} ({', '.join(environment)})")
    print(f"parameters named home/mlflow_uri/uri/store_root: {len(params)}")
    assert environment == []
    assert params == []
