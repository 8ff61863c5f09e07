"""What a training run is asked to do: the spec a user launches, checked before any data is read.

The same spec, dataset version and seed give the same model (``Reproduce`` relies on it).
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from core.data import datasets
from core.errors import InvalidInput
from core.training.catalog import DEFAULT_KIND, TASKS, check_params, get_kind

MODEL_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
SEARCH_METHODS = ("grid", "random")


@dataclass(frozen=True)
class Search:
    method: str = "random"  # grid | random
    candidates: int = 8
    folds: int = 3


@dataclass(frozen=True)
class TrainingSpec:
    """Everything that decides a training run; the same spec, dataset version and seed give the same model."""

    dataset: str  # NAME or NAME:VERSION (pinned to a version at launch)
    target: str
    model: str = DEFAULT_KIND
    params: dict[str, Any] = field(default_factory=dict)
    task: str = "auto"
    holdout: float = 0.2
    seed: int = 42
    sensitive: str | None = None
    search: Search | None = None
    model_name: str | None = None
    exclude: tuple[str, ...] = ()
    allow_failed_certificate: bool = False
    # A new version whose input columns differ from the model's newest version's (core.training.integrity)
    allow_schema_change: bool = False
    reproduces: int | None = None  # the training run this one repeats

    @property
    def dataset_name(self) -> str:
        return self.dataset.partition(":")[0]

    @property
    def registered_name(self) -> str:
        return self.model_name or self.dataset_name

    def as_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["exclude"] = list(self.exclude)
        return doc


def parse_spec(raw: dict[str, Any]) -> TrainingSpec:
    """A spec from JSON-like input (job params, CLI, page); everything checkable without data is checked."""
    if not isinstance(raw, dict):
        raise InvalidInput("a training spec is a mapping of settings")
    known = set(TrainingSpec.__dataclass_fields__)
    unknown = sorted(set(raw) - known)
    if unknown:
        raise InvalidInput(f"unknown training setting(s): {', '.join(unknown)}; "
                           f"settings are: {', '.join(sorted(known))}")
    dataset = str(raw.get("dataset") or "").strip()
    if not dataset:
        raise InvalidInput("no dataset given: name one as NAME or NAME:VERSION")
    datasets.parse_ref(dataset)
    target = str(raw.get("target") or "").strip()
    if not target:
        raise InvalidInput("no target column given")
    kind = get_kind(str(raw.get("model") or DEFAULT_KIND))
    task = str(raw.get("task") or "auto")
    if task not in (*TASKS, "auto"):
        raise InvalidInput(f"task {task!r} is unknown; use auto, classification or regression")
    params = dict(raw.get("params") or {})
    if task != "auto":
        params = check_params(kind, task, params)
    else:  # the task is known once the data is loaded; until then check each value where it applies
        by_name = {p.name: p for p in kind.params}
        unknown = sorted(set(params) - set(by_name))
        if unknown:
            raise InvalidInput(f"parameter(s) {', '.join(unknown)} do not apply to {kind.key}; its parameters are: "
                               f"{', '.join(by_name)}")
        params = {name: by_name[name].check(value) for name, value in params.items()}
    holdout = _number(raw.get("holdout", 0.2), "holdout", 0.05, 0.5)
    seed = int(_number(raw.get("seed", 42), "seed", 0, 2**32 - 1, whole=True))
    search = _search(raw.get("search"))
    model_name = (raw.get("model_name") or "").strip() or None
    if model_name is not None and not MODEL_NAME_RE.match(model_name):
        raise InvalidInput(f"model name {model_name!r} is not allowed: use 1-64 letters, digits, '_', '.' or '-'")
    sensitive = (raw.get("sensitive") or "").strip() or None
    exclude = tuple(dict.fromkeys(str(c) for c in (raw.get("exclude") or ())))
    if target in exclude:
        raise InvalidInput(f"the target {target!r} cannot also be excluded")
    return TrainingSpec(dataset=dataset, target=target, model=kind.key, params=params, task=task, holdout=holdout,
                        seed=seed, sensitive=sensitive, search=search, model_name=model_name, exclude=exclude,
                        allow_failed_certificate=bool(raw.get("allow_failed_certificate", False)),
                        allow_schema_change=bool(raw.get("allow_schema_change", False)),
                        reproduces=int(raw["reproduces"]) if raw.get("reproduces") else None)


def _number(value: Any, name: str, low: float, high: float, *, whole: bool = False) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"{name}={value!r} is not a number") from None
    if math.isnan(number) or number < low or number > high or (whole and number != int(number)):
        kind = "a whole number " if whole else ""
        raise InvalidInput(f"{name}={value!r} is out of range; use {kind}{low:g} … {high:g}")
    return number


def _search(raw: Any) -> Search | None:
    if not raw:
        return None
    if isinstance(raw, Search):
        raw = asdict(raw)
    method = str(raw.get("method", "random"))
    if method not in SEARCH_METHODS:
        raise InvalidInput(f"search method {method!r} is unknown; use grid or random")
    candidates = int(_number(raw.get("candidates", 8), "search candidates", 1, 200, whole=True))
    folds = int(_number(raw.get("folds", 3), "search CV folds", 2, 20, whole=True))
    return Search(method=method, candidates=candidates, folds=folds)


def check_columns(spec: TrainingSpec, columns: list[str], ref: str) -> None:
    """Refuse names that are not columns of the dataset version, listing the columns there are."""
    listing = ", ".join(columns[:40]) + (" …" if len(columns) > 40 else "")
    for role, name in (("target", spec.target), ("sensitive column", spec.sensitive)):
        if name is not None and name not in columns:
            raise InvalidInput(f"{role} {name!r} is not a column of {ref}; columns are: {listing}")
    missing = [c for c in spec.exclude if c not in columns]
    if missing:
        raise InvalidInput(f"excluded column(s) {', '.join(missing)} are not in {ref}; columns are: {listing}")
