"""Settings: LEANOPS_MLFLOW_UI_URL (issue 19), a link shown to every user."""

from __future__ import annotations

import pytest

from core.errors import InvalidInput
from core.settings import get_settings


def test_the_mlflow_ui_address_is_optional_and_loses_its_trailing_slash(tmp_path):
    assert get_settings(home=tmp_path).mlflow_ui_url == ""
    assert get_settings(home=tmp_path, mlflow_ui_url="https://mlflow.example.com/ml/").mlflow_ui_url == \
        "https://mlflow.example.com/ml"


@pytest.mark.parametrize(("value", "says"), [
    ("javascript:alert(1)", "http:// or https://"),
    ("mlflow.internal:5000", "http:// or https://"),
    ("http://mlflow.internal:5000/#/experiments/1", "must end at its path"),
    ("http://bob:hunter2-secret@mlflow.internal:5000", "must not hold a user name or password"),
])
def test_a_bad_mlflow_ui_address_is_refused_by_name_without_its_password(tmp_path, value, says):
    with pytest.raises(InvalidInput) as caught:
        get_settings(home=tmp_path, mlflow_ui_url=value)
    assert "LEANOPS_MLFLOW_UI_URL" in str(caught.value) and says in str(caught.value)
    assert "hunter2-secret" not in str(caught.value)
