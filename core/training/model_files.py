"""Model files from elsewhere: which formats LeanOps accepts, told from their bytes before anything is loaded.

Accepted (none of them runs code when read):

- **skops** (a zip with ``schema.json``): a scikit-learn estimator or ``Pipeline``, including the XGBoost and
  LightGBM scikit-learn wrappers. Its types are listed without loading anything
  (``skops.io.get_untrusted_types``) and every one must be on the allow-list (``allowed_type``): classes of
  scikit-learn, numpy and scipy, the XGBoost/LightGBM wrappers and boosters, ``collections.OrderedDict``.
  A file naming any other type is refused with the list.
- **XGBoost booster** in its own JSON or UBJSON format (``Booster.save_model("m.json" | "m.ubj")``).
- **LightGBM booster** in its text format (``Booster.save_model("m.txt")``).

Refused before a byte is deserialised: pickle (any protocol; joblib and cloudpickle write pickles), compressed
containers (joblib's ``compress=``), MLflow pyfunc folders/archives and Python code, ONNX (onnxruntime is not
part of LeanOps), anything else unrecognised. Every refusal is an ``InvalidInput`` saying how to save the model
with skops instead.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickletools
import zipfile
from dataclasses import dataclass
from typing import Any

from core.errors import InvalidInput

SKOPS, XGBOOST_JSON, XGBOOST_UBJ, LIGHTGBM_TEXT = "skops", "xgboost-json", "xgboost-ubj", "lightgbm-text"
FORMATS = (SKOPS, XGBOOST_JSON, XGBOOST_UBJ, LIGHTGBM_TEXT)
HOW_TO_SAVE = ("save a scikit-learn model or pipeline with skops (import skops.io; skops.io.dump(model, "
               "'model.skops')), or a bare booster in its own format (XGBoost: booster.save_model('model.json'); "
               "LightGBM: booster.save_model('model.txt'))")
# Classes of these packages may be named by a skops file (module-level classes and numpy ufuncs only: a
# function such as ``numpy.load`` or ``builtins.eval`` is never a trusted type).
TRUSTED_PACKAGES = ("sklearn", "numpy", "scipy")
TRUSTED_EXACT = frozenset({
    "xgboost.sklearn.XGBClassifier", "xgboost.sklearn.XGBRegressor", "xgboost.sklearn.XGBRFClassifier",
    "xgboost.sklearn.XGBRFRegressor", "xgboost.core.Booster",
    "lightgbm.sklearn.LGBMClassifier", "lightgbm.sklearn.LGBMRegressor", "lightgbm.basic.Booster",
    "collections.OrderedDict",
    "core.training.boosters.BoosterModel",  # LeanOps' own wrapper of a bare booster (a booster imported alone)
    "core.training.xgb_labels.LabelledXGBClassifier",  # the xgboost training kind's classifier
})
MAX_ZIP_RATIO = 200  # a skops file unpacking to more than this many times its size is refused (a zip bomb)


@dataclass(frozen=True)
class Loaded:
    """A model file read safely: the estimator, its format, and what it says about itself."""

    estimator: Any
    format: str
    sha256: str
    trusted_types: tuple[str, ...]  # the skops types it needed beyond skops' defaults (all allowed)
    refittable: bool  # a scikit-learn estimator a retrain can clone and fit again
    estimator_name: str  # e.g. "Pipeline(ColumnTransformer → XGBClassifier)"


def refuse(label: str, what: str) -> InvalidInput:
    return InvalidInput(f"{label} refused: {what}; nothing was loaded. Accepted: skops, XGBoost JSON/UBJ, LightGBM "
                        f"text. To import it, {HOW_TO_SAVE}")


def _is_pickle(data: bytes) -> bool:
    """Whether ``data`` decodes as pickle opcodes up to a STOP (``pickletools.genops`` reads opcodes only: it
    imports nothing and builds no object)."""
    if data[:1] == b"\x80" and len(data) > 1 and 1 <= data[1] <= 5:
        return True
    try:
        for opcode, _arg, _pos in pickletools.genops(io.BytesIO(data[:1 << 16])):
            if opcode.name == "STOP":
                return True
    except Exception:  # noqa: BLE001 - not opcodes: not a pickle
        return False
    return False


COMPRESSED = {b"\x1f\x8b": "gzip", b"BZh": "bz2", b"\xfd7zXZ\x00": "xz", b"\x04\x22\x4d\x18": "lz4",
              b"\x28\xb5\x2f\xfd": "zstd", b"\x78\x01": "zlib", b"\x78\x5e": "zlib", b"\x78\x9c": "zlib",
              b"\x78\xda": "zlib"}


def sniff(data: bytes, *, label: str) -> str:
    """The format of a model file from its bytes alone (one of ``FORMATS``); refuses everything else.

    Raises:
        InvalidInput: an empty, pickled, compressed, code-carrying or unrecognised file, naming what it is.
    """
    if not data:
        raise refuse(label, "the file is empty")
    head = data[:64]
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return _sniff_zip(data, label=label)
    if head.startswith(b"tree\nversion=") or head.startswith(b"tree\r\nversion="):
        return LIGHTGBM_TEXT
    if head[:1] == b"{":
        if b"learner" in head[:40] and head[1:2] in (b"L", b"l", b"i", b"U", b"I", b"$", b"#"):
            return XGBOOST_UBJ
        try:
            doc = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            doc = None
        if isinstance(doc, dict) and isinstance(doc.get("learner"), dict) and "version" in doc:
            return XGBOOST_JSON
        if isinstance(doc, dict):
            raise refuse(label, "a JSON document that is not an XGBoost model (no 'learner' and 'version')")
    for magic, kind in COMPRESSED.items():
        if head.startswith(magic):
            raise refuse(label, f"a {kind}-compressed file (joblib.dump(..., compress=...) writes these; inside is "
                                "a pickle, and loading a pickle runs code)")
    if _is_pickle(data):
        raise refuse(label, "a pickle (pickle, joblib and cloudpickle all write pickles, and loading one runs "
                            "whatever code it names)")
    text = head.lstrip().lower()
    if text.startswith((b"artifact_path", b"flavors", b"mlflow_version", b"model_uuid")):
        raise refuse(label, "an MLflow MLmodel file (a pyfunc model runs its own Python code)")
    if text.startswith((b"import ", b"from ", b"def ", b"class ", b"#!", b"# ")):
        raise refuse(label, "Python code")
    if b"onnx" in data[:256].lower() or head[:1] == b"\x08":
        raise refuse(label, "an ONNX or other protobuf file (LeanOps does not include an ONNX runtime)")
    raise refuse(label, "an unrecognised format")


def _sniff_zip(data: bytes, *, label: str) -> str:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except zipfile.BadZipFile as exc:
        raise refuse(label, f"a damaged zip archive ({exc})") from None
    names = {info.filename for info in infos}
    unpacked = sum(info.file_size for info in infos)
    if any(n.endswith(("MLmodel", "python_model.pkl")) or n.endswith(".py") for n in names):
        raise refuse(label, "an MLflow pyfunc model or Python code in a zip (it runs its own code)")
    if any(n.endswith((".pkl", ".pickle", ".joblib", "data.pkl")) for n in names):
        raise refuse(label, "a zip holding pickled data (a PyTorch or joblib archive; loading it runs code)")
    if "schema.json" not in names:
        raise refuse(label, "a zip archive that is not a skops file (no schema.json)")
    if unpacked > MAX_ZIP_RATIO * max(len(data), 1 << 20):
        raise refuse(label, f"a skops file that unpacks to {unpacked:,} bytes from {len(data):,}")
    return SKOPS


def allowed_type(name: str) -> bool:
    """Whether a type a skops file names may be trusted: see the module docstring."""
    if name in TRUSTED_EXACT:
        return True
    parts = name.split(".")
    if parts[0] not in TRUSTED_PACKAGES or len(parts) < 2 or any(not p.isidentifier() for p in parts):
        return False
    import importlib

    import numpy as np

    # The module is the longest importable prefix inside the package (importing the package's own modules runs
    # only the installed package's code); the rest must be attributes ending at a class or ufunc.
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return False
        return isinstance(obj, (type, np.ufunc))
    return False


def check_types(types: list[str], *, label: str) -> tuple[str, ...]:
    """``types`` (a skops file's untrusted types) if every one is allowed; else the refusal listing the others."""
    refused = sorted(t for t in types if not allowed_type(t))
    if refused:
        raise InvalidInput(f"{label} refused: its skops file names type(s) LeanOps does not trust: "
                           f"{', '.join(refused)}; nothing was loaded. Trusted: classes of scikit-learn, numpy and "
                           "scipy, and the XGBoost/LightGBM scikit-learn wrappers. Build the pipeline from those "
                           "only (no custom classes or functions) and save it with skops.io.dump(model, "
                           "'model.skops')")
    return tuple(sorted(types))


def describe(estimator: Any) -> str:
    """``Pipeline(ColumnTransformer → XGBClassifier)`` or the class name."""
    steps = getattr(estimator, "steps", None)
    if steps:
        return f"{type(estimator).__name__}({' → '.join(type(step).__name__ for _, step in steps)})"
    return type(estimator).__name__


def load(data: bytes, *, label: str, max_bytes: int) -> Loaded:
    """Read a model file safely: sniff its format, check a skops file's types, then load it.

    Raises:
        InvalidInput: too large, a refused format or type, or a file its own library cannot read.
    """
    if len(data) > max_bytes:
        raise InvalidInput(f"{label} refused: {len(data) / 1e6:.1f} MB is over the upload limit of "
                           f"{max_bytes / 1e6:.0f} MB (LEANOPS_MAX_UPLOAD_MB)")
    form = sniff(data, label=label)
    digest = hashlib.sha256(data).hexdigest()
    if form == SKOPS:
        import skops.io

        try:
            types = skops.io.get_untrusted_types(data=data)
        except Exception as exc:  # noqa: BLE001 - a skops file its own reader cannot list
            raise InvalidInput(f"{label} refused: its skops file cannot be read ({type(exc).__name__}: "
                               f"{str(exc)[:200]})") from None
        trusted = check_types(types, label=label)
        try:
            estimator = skops.io.loads(data, trusted=list(trusted))
        except Exception as exc:  # noqa: BLE001
            raise InvalidInput(f"{label} refused: skops could not load it ({type(exc).__name__}: "
                               f"{str(exc)[:200]})") from None
        if not callable(getattr(estimator, "predict", None)):
            raise InvalidInput(f"{label} refused: it holds a {type(estimator).__name__}, not an estimator with "
                               "predict")
        return Loaded(estimator, form, digest, trusted, refittable=_refittable(estimator),
                      estimator_name=describe(estimator))
    from core.training.boosters import BoosterModel

    booster = BoosterModel.read(data, form=form, label=label)
    return Loaded(booster, form, digest, (), refittable=False, estimator_name=booster.describe())


def _refittable(estimator: Any) -> bool:
    """A scikit-learn estimator (or pipeline) ``sklearn.base.clone`` can copy unfitted."""
    from sklearn.base import clone

    try:
        clone(estimator)
    except Exception:  # noqa: BLE001 - not clonable: a retrain needs a new import
        return False
    return callable(getattr(estimator, "fit", None))
