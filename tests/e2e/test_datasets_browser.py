"""The Datasets journey in a real browser: upload a CSV → version 1 with a passed certificate and profile
charts; a schema-breaking file → version 2 with its failing checks listed; the first file again → told it
is version 1, nothing new; malformed files → a one-line reason and nothing stored."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from playwright.sync_api import Page, expect

from tests.e2e.helpers import ADMIN, goto_page, login, wait_rerun
from tests.support.paths import ARTIFACTS


def customers(rows: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"age": rng.integers(18, 80, rows), "monthly_spend": rng.normal(60, 15, rows).round(2),
                         "plan": rng.choice(["basic", "pro", "team"], rows), "churned": rng.integers(0, 2, rows)})


def upload(page: Page, path: Path, name: str = "customers") -> None:
    page.get_by_label("Dataset name", exact=True).fill(name)
    page.get_by_label("Dataset name", exact=True).press("Tab")  # a person moves on: the name is committed
    wait_rerun(page)
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(path))
    expect(page.get_by_text(path.name, exact=True)).to_be_visible()
    wait_rerun(page)  # the upload reruns the script: let that run finish before clicking
    page.get_by_role("button", name="Register version").click()
    wait_rerun(page)


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"datasets-{name}.png"), full_page=True)


def test_upload_certify_break_and_reupload(dashboard, page: Page, tmp_path: Path) -> None:
    page.set_viewport_size({"width": 1400, "height": 2600})
    first, breaking = tmp_path / "customers.csv", tmp_path / "customers-march.csv"
    customers().to_csv(first, index=False)
    bad = customers(seed=1)
    bad["age"] = bad["age"] * 12  # ages in months
    bad.loc[:9, "plan"] = "enterprise"
    bad.to_csv(breaking, index=False)

    login(page, dashboard.url, *ADMIN)
    goto_page(page, "Datasets")
    expect(page.get_by_text("No datasets yet")).to_be_visible()

    upload(page, first)
    expect(page.get_by_text("Registered customers version 1: 400 rows, certificate passed.")).to_be_visible()
    expect(page.get_by_text("Certificate passed · customers:1")).to_be_visible()
    expect(page.get_by_text("passes by construction")).to_be_visible()  # inferred from itself: said so
    # A successful upload empties the form: no name, no file waiting to be registered again.
    expect(page.get_by_label("Dataset name", exact=True)).to_have_value("")
    expect(page.get_by_text(first.name, exact=True)).to_have_count(0)
    page.get_by_role("tab", name="Profile").click()
    expect(page.get_by_test_id("stPlotlyChart").first).to_be_visible()
    assert page.get_by_test_id("stPlotlyChart").count() == 1 + 4  # missing share + one per column
    shot(page, "1-first-version")

    upload(page, breaking)
    warning = page.get_by_test_id("stAlert").filter(has_text="Registered customers version 2")
    expect(warning).to_contain_text("certificate failed 2 check(s)")
    expect(warning).to_contain_text("range age: min 216")
    expect(warning).to_contain_text("allowed values plan: unexpected: 'enterprise' (10 rows)")
    page.get_by_role("tab", name="Certificate").click()
    expect(page.get_by_text("Certificate failed: 2 of")).to_be_visible()
    expect(page.get_by_text("2 version(s), newest first")).to_be_visible()
    page.get_by_role("tab", name="Diff").click()
    expect(page.get_by_test_id("stMetric").filter(has_text="Rows v1 → v2")).to_be_visible()
    shot(page, "2-schema-breaking-version")

    upload(page, first)
    sha = page.get_by_test_id("stAlert").filter(has_text="This content is already customers version 1")
    expect(sha).to_contain_text("nothing new.")
    expect(page.get_by_text("2 version(s), newest first")).to_be_visible()
    page.get_by_role("tab", name="Certificate").click()
    expect(page.get_by_text("Certificate passed · customers:1")).to_be_visible()
    shot(page, "3-same-content-again")

    files = sorted(p.name for p in (dashboard.home / "datasets").iterdir())
    assert len(files) == 2 and all(f.endswith(".parquet") for f in files)


def test_malformed_uploads_give_one_line_and_store_nothing(dashboard, page: Page, tmp_path: Path) -> None:
    ragged, binary = tmp_path / "ragged.csv", tmp_path / "photo.csv"
    ragged.write_text("a,b,c\n1,2,3\n4,5\n")
    binary.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)

    login(page, dashboard.url, *ADMIN)
    goto_page(page, "Datasets")
    upload(page, ragged, name="bad")
    expect(page.get_by_test_id("stAlert").filter(has_text="ragged.csv has ragged rows")).to_have_text(
        "ragged.csv has ragged rows: line 3 has 2 fields where the header has 3 ('4,5')")
    upload(page, binary, name="bad")
    expect(page.get_by_test_id("stAlert").filter(has_text="photo.csv")).to_have_text(
        "photo.csv looks binary (it contains NUL bytes), not CSV text; upload a UTF-8 CSV or a Parquet file")
    page.get_by_label("Dataset name", exact=True).fill("../etc")
    page.get_by_role("button", name="Register version").click()
    wait_rerun(page)
    expect(page.get_by_test_id("stAlert").filter(has_text="dataset name '../etc' is not allowed")).to_be_visible()
    shot(page, "4-malformed")
    expect(page.get_by_text("No datasets yet")).to_be_visible()
    assert not (dashboard.home / "datasets").exists() or not list((dashboard.home / "datasets").iterdir())
