"""Model files from elsewhere: the format told from the bytes before anything is loaded, the skops allow-list, bare
boosters as estimators, and the xgboost kind's classifier for any labels."""

from __future__ import annotations

import io
import json
import pickle
import zipfile

import joblib
import numpy as np
import pandas as pd
import pytest
import skops.io

from core.errors import InvalidInput
from core.training import model_files
from core.training.boosters import BoosterModel

MB = 2**20


def _frame(rows: int = 200) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.random(rows), "b": rng.random(rows)})
    return X, pd.Series(np.where(X["a"] > 0.5, "yes", "no"), name="label")


def _joblib(**kwargs) -> bytes:
    out = io.BytesIO()
    joblib.dump({"weights": np.arange(3)}, out, **kwargs)
    return out.getvalue()


def _zip(names: list[str]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name in names:
            archive.writestr(name, "x")
    return out.getvalue()


@pytest.mark.parametrize(("data", "said"), [
    *[(pickle.dumps({"a": [1, 2]}, protocol=p), "a pickle") for p in range(6)],
    (_joblib(), "a pickle"),
    (_joblib(compress=3), "zlib-compressed"),
    (_joblib(compress=("gzip", 3)), "gzip-compressed"),
    (_zip(["MLmodel", "python_model.pkl"]), "pyfunc"),
    (_zip(["archive/data.pkl", "archive/version"]), "pickled data"),
    (_zip(["notes.txt"]), "not a skops file"),
    (b"artifact_path: model\nflavors:\n  python_function: {}\n", "MLmodel"),
    (b"import os\nos.system('id')\n", "Python code"),
    (b'{"weights": [1, 2]}', "not an XGBoost model"),
    (b"", "empty"),
    (b"\x00\x01\x02 what is this", "unrecognised"),
])
def test_refused_formats_are_named_with_how_to_save_with_skops(data, said):
    with pytest.raises(InvalidInput) as refused:
        model_files.load(data, label="model file 'm'", max_bytes=MB)
    assert said in str(refused.value) and "skops.io.dump" in str(refused.value)


def test_over_the_upload_limit_is_refused_before_sniffing():
    with pytest.raises(InvalidInput, match="over the upload limit"):
        model_files.load(b"PK\x03\x04" + b"\0" * 2000, label="m", max_bytes=1000)


@pytest.mark.parametrize(("name", "allowed"), [
    ("sklearn.pipeline.Pipeline", True), ("sklearn.tree._tree.Tree", True), ("numpy.dtype", True),
    ("numpy.log", True), ("scipy.sparse._csr.csr_matrix", True), ("xgboost.sklearn.XGBClassifier", True),
    ("lightgbm.basic.Booster", True), ("collections.OrderedDict", True),
    ("numpy.load", False), ("builtins.eval", False), ("os.system", False), ("sklearn.utils.check_array", False),
    ("__main__.Payload", False), ("sklearn.no.such.Thing", False), ("subprocess.Popen", False),
])
def test_the_allow_list_takes_classes_of_the_trusted_packages_only(name, allowed):
    assert model_files.allowed_type(name) is allowed


def test_a_skops_pipeline_of_trusted_types_loads_and_is_refittable():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = _frame()
    pipe = Pipeline([("scale", StandardScaler()), ("model", LogisticRegression())]).fit(X, y)
    loaded = model_files.load(skops.io.dumps(pipe), label="m", max_bytes=10 * MB)
    assert loaded.format == "skops" and loaded.refittable
    assert loaded.estimator_name == "Pipeline(StandardScaler → LogisticRegression)"
    assert (loaded.estimator.predict(X) == pipe.predict(X)).all()


@pytest.mark.parametrize("form", ["json", "ubj", "lightgbm"])
def test_bare_boosters_predict_labels_of_the_dataset(form, tmp_path):
    X, y = _frame()
    codes = (y == "yes").astype(int)
    path = tmp_path / f"m.{'txt' if form == 'lightgbm' else form}"
    if form == "lightgbm":
        import lightgbm as lgb

        booster = lgb.train({"objective": "binary", "verbose": -1}, lgb.Dataset(X.to_numpy(), label=codes), 10)
        booster.save_model(path)
    else:
        import xgboost as xgb

        booster = xgb.train({"objective": "binary:logistic"}, xgb.DMatrix(X, label=codes), 10)
        booster.save_model(path)
    loaded = model_files.load(path.read_bytes(), label="m", max_bytes=10 * MB)
    model = loaded.estimator
    assert isinstance(model, BoosterModel) and not loaded.refittable
    model.bind(columns=["a", "b"], target_values=y, ref="d:1", label="m")
    assert list(model.classes_) == ["no", "yes"] and (model.predict(X) == y).mean() > 0.9
    # one skops file, only allowed types, the same predictions back
    dumped = skops.io.dumps(model)
    types = model_files.check_types(skops.io.get_untrusted_types(data=dumped), label="m")
    again = skops.io.loads(dumped, trusted=list(types))
    assert (again.predict(X) == model.predict(X)).all()


def test_a_booster_on_unnamed_columns_must_match_the_dataset_width(tmp_path):
    import xgboost as xgb

    X, y = _frame()
    booster = xgb.train({"objective": "binary:logistic"}, xgb.DMatrix(X.to_numpy(), label=(y == "yes")), 3)
    booster.save_model(tmp_path / "m.json")
    model = model_files.load((tmp_path / "m.json").read_bytes(), label="m", max_bytes=10 * MB).estimator
    with pytest.raises(InvalidInput, match="takes 2 unnamed features but d:1 has 3"):
        model.bind(columns=["a", "b", "c"], target_values=y, ref="d:1", label="m")


def test_an_xgboost_json_is_sniffed_from_its_learner():
    assert model_files.sniff(json.dumps({"learner": {}, "version": [3, 0, 0]}).encode(), label="m") == "xgboost-json"


def test_the_xgboost_kind_classifier_takes_any_labels():
    from sklearn.base import clone

    from core.training.xgb_labels import LabelledXGBClassifier

    X, y = _frame()
    model = LabelledXGBClassifier(n_estimators=10).fit(X, y)
    assert list(model.classes_) == ["no", "yes"] and set(model.predict(X)) == {"no", "yes"}
    assert clone(model).get_params()["n_estimators"] == 10


@pytest.mark.parametrize("form", ["pipeline", "json", "lightgbm"])
def test_served_copies_predict_on_one_thread_and_say_the_same(form, tmp_path):
    """Serving's copy of an XGBoost or LightGBM model predicts on the calling thread alone
    (``cache.one_thread_per_call``: OpenMP pools spinning between single-record calls took a third of a
    request's CPU), with the same outputs."""
    import json

    import xgboost as xgb
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from core.serving.cache import one_thread_per_call

    X, y = _frame()
    codes = (y == "yes").astype(int)
    if form == "pipeline":
        model = Pipeline([("prep", ColumnTransformer([("num", StandardScaler(), ["a", "b"])], n_jobs=-1)),
                          ("model", xgb.XGBClassifier(n_estimators=5, n_jobs=-1))]).fit(X, codes)
    else:
        path = tmp_path / ("m.txt" if form == "lightgbm" else "m.json")
        if form == "lightgbm":
            import lightgbm as lgb

            lgb.train({"objective": "binary", "verbose": -1}, lgb.Dataset(X.to_numpy(), label=codes), 5
                      ).save_model(path)
        else:
            xgb.train({"objective": "binary:logistic"}, xgb.DMatrix(X, label=codes), 5).save_model(path)
        model = model_files.load(path.read_bytes(), label="m", max_bytes=10 * MB).estimator
        model.bind(columns=["a", "b"], target_values=y, ref="d:1", label="m")
    before = model.predict_proba(X)

    one_thread_per_call(model)

    np.testing.assert_array_equal(model.predict_proba(X), before)
    if form == "pipeline":
        assert model.get_params()["model__n_jobs"] == 1
        assert model.get_params()["prep__n_jobs"] == -1  # scikit-learn's joblib does not spin: left as it was
        booster = model.named_steps["model"].get_booster()
        assert json.loads(booster.save_config())["learner"]["generic_param"]["nthread"] == "1"
    elif form == "json":
        assert json.loads(model.booster.save_config())["learner"]["generic_param"]["nthread"] == "1"
    else:
        assert model.num_threads == 1
