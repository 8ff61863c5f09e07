"""A spawned child never runs the parent's ``__main__`` again (core/platform/processes.py)."""

from __future__ import annotations

import multiprocessing
import os
import sys
import types

from core.platform import processes


def test_a_spawned_child_never_runs_the_page_streamlit_installed_as_main(tmp_path, monkeypatch):
    """Streamlit (and AppTest) install the running page as ``sys.modules["__main__"]``: a plain spawn ran it."""
    marker = tmp_path / "page-ran"
    page = tmp_path / "page.py"
    page.write_text(f"open({str(marker)!r}, 'w').close()\nraise SystemExit(3)\n")
    fake = types.ModuleType("__main__")
    fake.__file__ = str(page)
    monkeypatch.setitem(sys.modules, "__main__", fake)
    context = multiprocessing.get_context("spawn")

    child = context.Process(target=os.getpid)
    processes.start(child)
    child.join(60)
    assert child.exitcode == 0 and not marker.exists()
    assert fake.__spec__ is None  # put back as it was

    plain = context.Process(target=os.getpid)  # what the drift check's child did in the dashboard
    plain.start()
    plain.join(60)
    assert plain.exitcode != 0 and marker.exists()

