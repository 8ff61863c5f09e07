"""Start the drift check's model process before anything else is imported (issue 29).

The model's outputs come from a spawned child (``core.monitoring.model_outputs.Predictor``) whose
start is mostly imports: scikit-learn and skops (skops lists its trusted types by importing every
scikit-learn module), two to three seconds of CPU. Started only once the command knows the model
version, it finished last; started here, first thing in ``cli.py drift``, those imports run on the
other core while this process imports pandas and SQLAlchemy and reads the DB. The child learns which
version to load only later (``take``); one nobody takes ends when this process does (a daemon whose
pipe closes).

Only the standard library is imported here, so calling ``start`` costs nothing.
"""

from __future__ import annotations

from typing import Any

_started: dict[str, Any] = {}


def start() -> None:
    """Spawn the model process now (once per process)."""
    if _started:
        return
    import multiprocessing

    from core.platform import processes

    context = multiprocessing.get_context("spawn")
    conn, child = context.Pipe()
    process = context.Process(target=_child, args=(child,), name="leanops-drift-outputs", daemon=True)
    processes.start(process)  # never re-running this process's __main__ (cli.py, or a dashboard page)
    child.close()
    _started.update(process=process, conn=conn)


def take() -> tuple[Any, Any] | None:
    """(process, connection) of the child ``start`` spawned, once; None when none was started."""
    if not _started:
        return None
    found = (_started.pop("process"), _started.pop("conn"))
    return found


def _child(conn: Any) -> None:
    """In the child: import what loading a model needs, then serve the version the parent names."""
    try:
        import sklearn.base  # noqa: F401 - the imports are the point: done before the version is known
        import skops.io  # noqa: F401
    except ImportError:
        pass
    try:  # the parent sends the serving function itself (core.monitoring.model_process.serve, by reference)
        serve, registry, model, version, recorded, cache = conn.recv()
    except (EOFError, OSError):  # nobody took it (bad input, no outputs to weigh)
        return
    serve(conn, registry, model, version, recorded, cache)
