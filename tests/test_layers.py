"""Imports point down: core/, db/ and jobs/ never import the UI; core/ never imports an entry's framework.

Checked by parsing the source (nothing is imported), so a violation anywhere in a file is caught, even
inside a function that the other tests never call. ``EXCEPTIONS`` lists the one allowed crossing.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# ui/, app_pages/ and app.py import streamlit, so importing them is importing streamlit too.
UI = {"streamlit", "ui", "app_pages", "app"}
FORBIDDEN: dict[str, set[str]] = {
    "core": UI | {"fastapi", "starlette", "apscheduler", "api", "jobs", "cli"},
    "db": UI | {"fastapi", "apscheduler", "api", "jobs", "cli"},
    "jobs": UI | {"api", "cli"},
}
# File → the dotted modules (and their submodules) it may import although its layer forbids the package.
# core/platform/schedules.py parses a cron with APScheduler's trigger parser when a schedule or a policy
# is saved, so a cron the scheduler would refuse is refused there, with the field named, by the same
# parser. ``apscheduler.triggers`` is a pure parser (no threads, no job store, no scheduler); anything
# else of APScheduler, and apscheduler anywhere else in core/, stays forbidden: the scheduler is jobs/'.
EXCEPTIONS: dict[str, set[str]] = {"core/platform/schedules.py": {"apscheduler.triggers"}}


def imported_names(source: str) -> set[str]:
    """Dotted module names of every absolute import in ``source`` (``from a.b import c`` gives ``a.b``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


def imported_modules(source: str) -> set[str]:
    """Top-level package names of every absolute import in ``source``."""
    return {name.split(".")[0] for name in imported_names(source)}


def forbidden_imports(layer: str, path: str, source: str) -> set[str]:
    """The forbidden packages ``source`` (the file ``path`` under ``layer``/) imports, after its exception."""
    allowed = EXCEPTIONS.get(path, set())
    names = {n for n in imported_names(source) if not any(n == a or n.startswith(a + ".") for a in allowed)}
    return {name.split(".")[0] for name in names} & FORBIDDEN[layer]


def python_files(layer: str) -> list[Path]:
    return sorted((ROOT / layer).rglob("*.py"))


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_point_down(layer: str) -> None:
    files = python_files(layer)
    assert files, f"no Python files found under {layer}/"
    problems = []
    for path in files:
        bad = forbidden_imports(layer, path.relative_to(ROOT).as_posix(), path.read_text(encoding="utf-8"))
        if bad:
            problems.append(f"{path.relative_to(ROOT)} imports {', '.join(sorted(bad))}")
    assert not problems, (f"{layer}/ must not import {', '.join(sorted(FORBIDDEN[layer]))} (besides "
                          f"{EXCEPTIONS}):\n" + "\n".join(problems))


@pytest.mark.parametrize(("path", "source", "bad"), [
    ("core/platform/schedules.py", "from apscheduler.triggers.cron import CronTrigger", set()),
    ("core/platform/schedules.py", "import apscheduler.triggers.cron", set()),
    ("core/platform/schedules.py", "from apscheduler.schedulers.background import BackgroundScheduler",
     {"apscheduler"}),
    ("core/platform/schedules.py", "from apscheduler import triggers", {"apscheduler"}),
    ("core/platform/schedules.py", "from apscheduler.triggersx import y", {"apscheduler"}),
    ("core/policy.py", "from apscheduler.triggers.cron import CronTrigger", {"apscheduler"}),
])
def test_the_trigger_parser_is_core_s_only_apscheduler_import(path: str, source: str, bad: set[str]) -> None:
    assert forbidden_imports("core", path, source) == bad


def test_every_exception_is_used() -> None:
    """An exception whose file no longer imports the module is dropped rather than left open."""
    for path, allowed in EXCEPTIONS.items():
        names = imported_names((ROOT / path).read_text(encoding="utf-8"))
        for module in allowed:
            assert any(n == module or n.startswith(module + ".") for n in names), f"{path} no longer imports {module}"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import streamlit as st", {"streamlit"}),
        ("import streamlit.components.v1", {"streamlit"}),
        ("from streamlit import session_state", {"streamlit"}),
        ("def f():\n    from streamlit.runtime import exists\n", {"streamlit"}),
        ("from apscheduler.schedulers.background import BackgroundScheduler", {"apscheduler"}),
        ("from . import audit\nfrom .errors import NotFound", set()),
        ("import os, json", {"os", "json"}),
    ],
)
def test_imported_modules_sees_every_form(source: str, expected: set[str]) -> None:
    assert imported_modules(source) == expected


# -- core: the loop's stages in order, no cycles -------------------------------------------------

# The floor every stage may use, then the stages in the order of the loop. A module may import the
# floor and the stages before its own, never a later one; `workspace` (init, the demo) sits on top.
FLOOR = {"errors", "settings", "actors", "audit", "audit_checkpoints", "audit_anchor", "accounts", "policy", "secrets",
         "platform", "alerts", "formats"}
STAGES = ["data", "training", "registry", "promotion", "serving", "monitoring", "retraining", "compliance",
          "workspace"]


def core_modules() -> dict[str, Path]:
    """Dotted module name → file, for every module under core/ (packages by their __init__)."""
    found = {}
    for path in python_files("core"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def core_imports(path: Path, modules: set[str]) -> set[str]:
    """The core modules ``path`` imports (``from core.x import y`` counts ``core.x.y`` when that is a module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "core")
        elif (isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
              and node.module.split(".")[0] == "core"):
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                found.add(child if child in modules else node.module)
    return {name for name in found if name in modules and name != "core"}


def import_graph() -> dict[str, set[str]]:
    modules = core_modules()
    return {name: core_imports(path, set(modules)) - {name} for name, path in modules.items()}


def stage_of(module: str) -> str:
    return module.split(".")[1] if module.count(".") else ""


def test_core_packages_are_the_floor_and_the_stages():
    top = {stage_of(name) for name in core_modules() if name != "core"}
    assert top == FLOOR | set(STAGES), f"unexpected entries under core/: {sorted(top - FLOOR - set(STAGES))}"


def test_stages_import_only_the_floor_and_earlier_stages():
    problems = []
    for module, imports in sorted(import_graph().items()):
        own = stage_of(module)
        for target in sorted(imports):
            other = stage_of(target)
            if other in FLOOR or other == own:
                continue
            if own in FLOOR:
                problems.append(f"{module} (the floor) imports the stage {target}")
            elif STAGES.index(other) > STAGES.index(own):
                problems.append(f"{module} ({own}) imports the later stage {target} ({other})")
    assert not problems, "stage order " + " → ".join(STAGES) + " broken:\n" + "\n".join(problems)


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the strongly connected components of ``graph``."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def test_no_import_cycle_among_core_modules():
    cycles = [c for c in strongly_connected(import_graph()) if len(c) > 1]
    print(f"core import graph: {len(import_graph())} modules, {len(cycles)} cycles")
    for cycle in cycles:
        print("cycle:", " ⇄ ".join(cycle))
    assert not cycles, "import cycles among core modules:\n" + "\n".join(" ⇄ ".join(c) for c in cycles)


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert [c for c in strongly_connected(graph) if len(c) > 1] == [["a", "b", "c"]]


def test_db_never_imports_core():
    offenders = [f"{p.relative_to(ROOT)}" for p in python_files("db") if "core" in imported_modules(p.read_text())]
    assert not offenders, f"db/ must not import core: {offenders}"


def test_entries_never_import_jobs_except_the_worker_command():
    """cli.py, api/ and app_pages/ call core; only `cli.py worker` starts the job runtime."""
    problems = []
    entries = [ROOT / "cli.py", *python_files("api"), *python_files("app_pages"), *python_files("ui"), ROOT / "app.py"]
    for path in entries:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for fn in [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)] or [tree]:
            where = (str(path.relative_to(ROOT)), getattr(fn, "name", ""))
            if imported_modules(ast.unparse(fn)) & {"jobs"} and fn is not tree and where not in JOB_RUNTIME_ENTRIES:
                problems.append(f"{path.relative_to(ROOT)}:{fn.name}")
        top_level = ast.Module(body=[n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))],
                               type_ignores=[])
        if imported_modules(ast.unparse(top_level)) & {"jobs"}:
            problems.append(f"{path.relative_to(ROOT)} (module level)")
    assert not problems, f"entries importing jobs/: {problems}"


# Where starting the job runtime (APScheduler, the queue poller) is the point.
# The API and a dashboard without its own scheduler start the housekeeping (jobs/housekeeping.py) too: every
# process that opens the workspace reaps stopped jobs and the model versions they left pending.
JOB_RUNTIME_ENTRIES = {("cli.py", "cmd_worker"), ("ui/resources.py", "scheduler"), ("api/app.py", "create_app")}
