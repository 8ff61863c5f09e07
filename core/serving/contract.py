"""The serving contract: which request columns a model takes, by its policy, and what the answer says about them.

A client refactor must not silently change what a model sees. By default (policy ``serving``):

- a record that lacks a model column is refused (422 naming ``records[i].column``); with
  ``missing_columns: impute`` the model's imputer fills it and the answer lists it (``imputed_columns``);
- a column the model does not know (often a typo: ``credit_scor``) is refused (422 naming it, with the
  closest model column); with ``unknown_columns: ignore`` it is dropped and listed (``ignored_columns``).

A null value is not a missing column: the client said "unknown" on purpose, and the imputer fills it.

Categories a model never saw in training (its one-hot encoders' categories) are predicted as the encoder
allows (all zeros) and counted: the answer's ``warnings`` and the serving metrics say how many records had
one, per column.
"""

from __future__ import annotations

import difflib
import threading
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from core.serving.signature import Frame, InputSchema, RecordError

REJECT, IMPUTE, IGNORE = "reject", "impute", "ignore"


@dataclass(frozen=True)
class Rules:
    """A model's policy ``serving`` section, as the contract needs it."""

    missing_columns: str = REJECT
    unknown_columns: str = REJECT

    @classmethod
    def of(cls, policies: Any, model: str) -> Rules:
        """From ``settings.policies`` (a ``core.policy.Policies``); None or an unreadable file: the defaults."""
        if policies is None:
            return cls()
        try:
            serving = policies.rules_for(model).serving
        except Exception:  # noqa: BLE001 - a broken policies.yaml must not open the contract: reject stays
            return cls()
        return cls(missing_columns=serving.missing_columns, unknown_columns=serving.unknown_columns)


@dataclass(frozen=True)
class Checked:
    """The schema to coerce with (every column optional when missing ones are imputed) and what was let through."""

    schema: InputSchema
    imputed: tuple[str, ...] = ()


def check(schema: InputSchema, parsed: list[dict[str, Any]] | Frame, rules: Rules) -> Checked:
    """Hold a request's columns to the contract; RecordError naming every refused ``records[i].column``."""
    names = schema.names
    wanted = set(names)
    problems: list[RecordError] = []
    missing: dict[str, int] = {}  # column → the first record without it
    unknown: dict[str, int] = {}  # column → the first record with it
    if isinstance(parsed, Frame):
        present = set(parsed.columns)
        missing = {n: 0 for n in names if n not in present}
        unknown = {str(c): 0 for c in parsed.columns if c not in wanted}
    else:
        for i, record in enumerate(parsed):
            if record.keys() == wanted:  # the usual record: exactly the model's columns
                continue
            for name in names:
                if name not in record and name not in missing:
                    missing[name] = i
            for key in record:
                if key not in wanted and key not in unknown:
                    unknown[str(key)] = i
    if unknown and rules.unknown_columns == REJECT:
        for key, i in unknown.items():
            close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else "."
            problems.append(RecordError(
                f"record {i} has column {key!r}, which the model does not take{hint} The model takes: "
                f"{', '.join(names)} (policy serving.unknown_columns: ignore lets unknown columns through)",
                record=i, column=key))
    if missing and rules.missing_columns == REJECT:
        for name, i in missing.items():
            problems.append(RecordError(
                f"record {i} has no column {name!r}; the model needs: {', '.join(names)} (send null for an "
                "unknown value; policy serving.missing_columns: impute fills missing columns)",
                record=i, column=name))
    if problems:  # with the value errors of the columns that are there: every bad field in one answer
        raise RecordError.of(problems + _value_problems(schema, parsed, set(unknown)))
    if missing:  # imputed: every column may be absent, the model's imputer fills it
        return Checked(replace(schema, columns=tuple(replace(c, required=False) for c in schema.columns)),
                       tuple(sorted(missing)))
    return Checked(schema)


def _value_problems(schema: InputSchema, parsed: list[dict[str, Any]] | Frame, unknown: set[str]) -> list[RecordError]:
    """The value errors of the model's columns a refused request did send (absent ones are already named)."""
    optional = replace(schema, columns=tuple(replace(c, required=False) for c in schema.columns))
    try:
        if isinstance(parsed, Frame):
            optional.coerce_frame(Frame({k: v for k, v in parsed.columns.items() if k not in unknown}, parsed.rows))
        else:
            optional.coerce([{k: v for k, v in record.items() if k not in unknown} for record in parsed])
    except RecordError as exc:
        return list(exc.problems)
    return []


# -- unseen categories ---------------------------------------------------------------------------

_known: dict[int, tuple[Any, dict[str, frozenset[str]]]] = {}
_known_lock = threading.Lock()


def known_categories(model: Any) -> dict[str, frozenset[str]]:
    """Column → the categories the fitted model's one-hot encoders know (as text); {} when it has none
    (a model LeanOps did not build, or no categorical column). Read once per loaded model."""
    key = id(model)
    with _known_lock:
        found = _known.get(key)
        if found is not None and found[0] is model:
            return found[1]
    cats = _encoder_categories(model)
    with _known_lock:
        if len(_known) > 256:  # loaded versions come and go; the map never grows without bound
            _known.clear()
        _known[key] = (model, cats)
    return cats


def _encoder_categories(model: Any) -> dict[str, frozenset[str]]:
    try:
        from sklearn.compose import ColumnTransformer
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import OneHotEncoder
    except ImportError:  # pragma: no cover - sklearn is a dependency
        return {}
    out: dict[str, frozenset[str]] = {}
    steps = list(model.named_steps.values()) if isinstance(model, Pipeline) else [model]
    for step in steps:
        if not isinstance(step, ColumnTransformer):
            continue
        for _name, transformer, columns in getattr(step, "transformers_", []):
            inner = list(transformer.named_steps.values()) if isinstance(transformer, Pipeline) else [transformer]
            encoder = next((t for t in inner if isinstance(t, OneHotEncoder)), None)
            fitted = getattr(encoder, "categories_", None)  # unfitted when its branch had no column
            if fitted is None or not isinstance(columns, list | tuple | np.ndarray):
                continue
            for column, categories in zip(columns, fitted, strict=False):
                out[str(column)] = frozenset(str(c) for c in categories if not _isnull(c))
    return out


def _isnull(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def _missing(value: Any) -> bool:
    """A missing value as pandas' ``notna`` sees one (None, NaN, ``pd.NA``, ``NaT``)."""
    return _isnull(value) or value is pd.NA or value is pd.NaT


def unseen(columns: dict[str, np.ndarray], known: dict[str, frozenset[str]]) -> list[dict[str, Any]]:
    """Per categorical column whose values include categories the model never saw: how many records, and a few
    of the values (as ``warnings`` of the answer). Plain Python over the values: a request is mostly one record,
    and a pandas Series per column cost a tenth of a single-record predict's CPU."""
    warnings = []
    for column, categories in known.items():
        values = columns.get(column)
        if values is None or not len(values):
            continue
        new = [text for value in values if not _missing(value) and (text := str(value)) not in categories]
        if new:
            count, examples = len(new), list(dict.fromkeys(new))[:5]
            warnings.append({"warning": "unseen_category", "column": column, "records": count,
                             "values": examples,
                             "message": f"{count} record(s) have {column} values the model never saw in training "
                                        f"({', '.join(repr(v) for v in examples)}): predicted as if unknown"})
    return warnings
