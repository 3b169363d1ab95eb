"""The reports in a real headless browser (Debian's chromium, installed by `make test`): each page (a
lower-is-better study, a higher-is-better one, a comparison) loads without console errors, every figure
loads with a non-zero rendered size, and each figure is screenshotted (PNG files a reviewer can open)."""

from __future__ import annotations

import shutil

import pytest

from scalinglab.analysis import analyse
from scalinglab.report.html import write_comparison, write_report
from test_report import TRUE_PARAMS, study_table

pytestmark = pytest.mark.slow

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    """Three reports: minADE-like (with a train split), mAP-like, and a comparison of two studies."""
    import pandas as pd

    root = tmp_path_factory.mktemp("reports")
    table = study_table()
    both = pd.concat([table, table.assign(split="train", value=table["value"] * 0.95)], ignore_index=True)
    loss = analyse(both, "grid.csv", metric="loss", bootstrap=10, title='<img src=x onerror="alert(1)">')
    m_ap = table.assign(metric="mAP", value=1 - table["value"] / 10, higher_is_better=True)
    detection = analyse(m_ap, "det.csv", metric="mAP", bootstrap=0, form="chinchilla")
    other = analyse(study_table({**TRUE_PARAMS, "alpha": 0.45}), "b.csv", metric="loss", bootstrap=0, form="chinchilla")
    return {
        "loss": (write_report(loss, root / "loss"), 6),
        "mAP": (write_report(detection, root / "map"), 5),
        "compare": (write_comparison({"v1": loss, "v2": other}, root / "compare", "loss"), 1),
    }


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    if CHROMIUM is None or DRIVER is None:
        pytest.skip("chromium and chromedriver not found (`make test` installs Debian's chromium and chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path_factory.mktemp('profile')}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(service=Service(DRIVER), options=options)
    browser.set_window_size(1400, 1000)
    yield browser
    browser.quit()


@pytest.mark.parametrize("name", ["loss", "mAP", "compare"])
def test_every_figure_loads_and_is_screenshotted(pages, driver, name, tmp_path):
    page, figures = pages[name]
    driver.get(page.as_uri())
    assert driver.execute_script("return document.readyState") == "complete"
    sizes = driver.execute_script(
        "return Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight,"
        " i.getBoundingClientRect().width, i.getBoundingClientRect().height]);"
    )
    assert len(sizes) == figures
    for complete, natural_w, natural_h, width, height in sizes:
        assert complete and natural_w > 0 and natural_h > 0 and width > 0 and height > 0
    errors = [entry for entry in driver.get_log("browser") if entry["level"] in ("SEVERE", "ERROR")]
    assert errors == []
    shots = page.parent / "screenshots"
    shots.mkdir(exist_ok=True)
    for k, image in enumerate(driver.find_elements("tag name", "img")):
        driver.execute_script("arguments[0].scrollIntoView();", image)
        path = shots / f"figure{k}.png"
        assert image.screenshot(str(path)) and path.stat().st_size > 1000
    if name == "loss":  # the hostile title is text, not an element; the verdict is at the top
        assert driver.execute_script("return document.querySelectorAll('img[src=x]').length") == 0
        assert 'onerror="alert(1)"' in driver.find_element("tag name", "h1").text
        assert driver.find_element("tag name", "h2").text == "Verdict"
