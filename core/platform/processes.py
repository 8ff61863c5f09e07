"""Child processes that never run this process's ``__main__`` again.

``multiprocessing``'s spawn start method re-runs the parent's main script in every child (as ``__mp_main__``)
before unpickling the target. LeanOps' targets are functions of importable modules, so that re-run is never
needed, and it can be wrong:

- in the dashboard, Streamlit installs each page script as ``sys.modules["__main__"]`` while it runs, so a child
  spawned by a job on the embedded scheduler ran the last page (``app_pages/training.py``) and died before its
  work (found by the kill test under pytest-xdist, where AppTest does the same);
- in ``cli.py drift``, the child imported the whole CLI again for nothing.

``start`` marks the main module as a package's ``__main__`` for the instant the child is prepared: the child then
leaves its main alone (``multiprocessing.spawn._fixup_main_from_name`` skips such names).
"""

from __future__ import annotations

import sys
import threading
from importlib.machinery import ModuleSpec
from multiprocessing.process import BaseProcess

_LOCK = threading.Lock()
_NOT_RERUN = ModuleSpec("leanops.__main__", None)  # a name ending in ".__main__": the spawned child skips it


def start(process: BaseProcess) -> None:
    """``process.start()`` (a spawn-context process) without its child running this process's ``__main__``."""
    main = sys.modules["__main__"]  # multiprocessing itself needs one
    with _LOCK:
        saved = getattr(main, "__spec__", None)
        main.__spec__ = _NOT_RERUN
        try:
            process.start()
        finally:
            main.__spec__ = saved
