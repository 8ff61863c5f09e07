"""Imports point down: core/, db/ and jobs/ never import the UI; core/ never imports an entry's framework.

Checked by parsing the source (nothing is imported), so a violation anywhere in a file is caught, even
inside a function that the other tests never call.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# ui/, pages/ and app.py import streamlit, so importing them is importing streamlit too.
UI = {"streamlit", "ui", "pages", "app"}
FORBIDDEN: dict[str, set[str]] = {
    "core": UI | {"fastapi", "starlette", "apscheduler", "api", "jobs", "cli"},
    "db": UI | {"fastapi", "apscheduler", "api", "jobs", "cli"},
    "jobs": UI | {"api", "cli"},
}


def imported_modules(source: str) -> set[str]:
    """Top-level package names of every absolute import in ``source``."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def python_files(layer: str) -> list[Path]:
    return sorted((ROOT / layer).rglob("*.py"))


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_point_down(layer: str) -> None:
    files = python_files(layer)
    assert files, f"no Python files found under {layer}/"
    problems = []
    for path in files:
        bad = imported_modules(path.read_text(encoding="utf-8")) & FORBIDDEN[layer]
        if bad:
            problems.append(f"{path.relative_to(ROOT)} imports {', '.join(sorted(bad))}")
    assert not problems, f"{layer}/ must not import {', '.join(sorted(FORBIDDEN[layer]))}:\n" + "\n".join(problems)


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
