"""The report in a real headless browser (Debian's chromium, installed by `make test`): the page loads
without console errors and every image has a non-zero rendered size."""

from __future__ import annotations

import shutil

import pytest

from scalinglab.report.analysis import analyse
from scalinglab.report.html import write_report
from test_report import study_table

pytestmark = pytest.mark.slow

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.mark.skipif(
    CHROMIUM is None or DRIVER is None,
    reason="chromium and chromedriver not found (`make test` installs Debian's chromium and chromium-driver)",
)
def test_report_renders_in_headless_chromium(tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    analysis = analyse(study_table(), "grid.csv", metric="loss", bootstrap=10, title='<img src=x onerror="alert(1)">')
    page = write_report(analysis, tmp_path / "r")
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
        f"--user-data-dir={tmp_path / 'profile'}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        driver.set_window_size(1400, 1000)
        driver.get(page.as_uri())
        assert driver.execute_script("return document.readyState") == "complete"
        sizes = driver.execute_script(
            "return Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight,"
            " i.getBoundingClientRect().width, i.getBoundingClientRect().height]);"
        )
        assert len(sizes) == 4
        for complete, natural_w, natural_h, width, height in sizes:
            assert complete and natural_w > 0 and natural_h > 0 and width > 0 and height > 0
        errors = [entry for entry in driver.get_log("browser") if entry["level"] in ("SEVERE", "ERROR")]
        assert errors == []
        # The hostile title is text, not an element.
        assert driver.execute_script("return document.querySelectorAll('img[src=x]').length") == 0
        assert 'onerror="alert(1)"' in driver.find_element("tag name", "h1").text
    finally:
        driver.quit()
