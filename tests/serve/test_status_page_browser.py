"""The status page in a real headless Chromium (Debian's ``chromium`` and its driver): sign in
with the token, watch a running pipeline's numbers move, pause it and resume it by clicking.

Screenshots go to the test's tmp directory, and to ``$OMCONNECT_TEST_ARTIFACTS`` when set.
``OMCONNECT_CHROMIUM`` and ``OMCONNECT_CHROMEDRIVER`` override where the browser and its
driver are.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from omconnect.runtime.serve.status_page import CONTENT_SECURITY_POLICY
from tests.support.served_worker import ServedWorker, wait_until, write_orders, write_pipeline

CHROMIUM = os.environ.get("OMCONNECT_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("OMCONNECT_CHROMEDRIVER", "/usr/bin/chromedriver")


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not Path(path).exists()]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} not found: apt-get install chromium chromium-driver "
            "(or point OMCONNECT_CHROMIUM / OMCONNECT_CHROMEDRIVER at them)"
        )
    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument("--window-size=1400,700")
    options.binary_location = CHROMIUM
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


class Screenshots:
    """Numbered screenshots in ``folder``, copied to ``$OMCONNECT_TEST_ARTIFACTS`` too."""

    def __init__(self, driver: WebDriver, folder: Path) -> None:
        self.driver = driver
        self.folder = folder
        self.taken = 0
        folder.mkdir(parents=True, exist_ok=True)

    def take(self, name: str) -> Path:
        self.taken += 1
        path = self.folder / f"{self.taken:02d}-{name}.png"
        assert self.driver.save_screenshot(str(path)), path
        artifacts = os.environ.get("OMCONNECT_TEST_ARTIFACTS")
        if artifacts:
            Path(artifacts).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(artifacts) / f"status-page-{path.name}")
        return path


def append_orders(source: Path, stop: threading.Event) -> None:
    """A new CSV file of orders every 0.2 s (written aside, then renamed into place)."""
    first = 100
    while not stop.wait(0.2):
        part = source / f"part-{first}.tmp"
        write_orders(part, range(first, first + 5))
        part.rename(source / f"part-{first}.csv")
        first += 5


def cell(driver: WebDriver, pipeline: str, column: str) -> str:
    """The text of ``column`` (a class) in the row of ``pipeline``, "" while it is not there."""
    try:
        found = driver.find_elements(By.CSS_SELECTOR, f'tr[data-pipeline="{pipeline}"] td.{column}')
        return found[0].text if found else ""
    except StaleElementReferenceException:  # the row was re-rendered under us
        return ""


def click(driver: WebDriver, pipeline: str, action: str) -> None:
    def clicked() -> bool:
        try:
            buttons = driver.find_elements(
                By.CSS_SELECTOR, f'tr[data-pipeline="{pipeline}"] button[data-action="{action}"]'
            )
            if buttons and buttons[0].is_enabled():
                buttons[0].click()
                return True
        except StaleElementReferenceException:
            pass
        return False

    wait_until(clicked, timeout=5, what=f"an enabled {action} button")


def test_sign_in_watch_live_numbers_pause_and_resume(tmp_path: Path, browser: WebDriver) -> None:
    source = tmp_path / "in"
    write_orders(source / "a.csv", range(1, 4))
    write_pipeline(tmp_path / "pipelines", "orders", tmp_path, source, "*.csv")
    shots = Screenshots(browser, tmp_path / "screenshots")
    stop = threading.Event()
    writer = threading.Thread(target=append_orders, args=(source, stop), daemon=True)

    with ServedWorker(tmp_path / "pipelines") as worker:
        status, headers, _ = worker.request("GET", "/")
        assert status == 200 and headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        writer.start()
        try:
            browser.get(worker.base_url + "/")
            login = browser.find_element(By.ID, "login")
            wait_until(login.is_displayed, timeout=5, what="the login form")
            assert not browser.find_elements(By.CSS_SELECTOR, "tr[data-pipeline]"), "no data yet"
            shots.take("login")

            browser.find_element(By.ID, "token").send_keys(worker.token)
            browser.find_element(By.CSS_SELECTOR, "#login button[type=submit]").click()
            wait_until(
                lambda: cell(browser, "orders", "state") == "RUNNING", timeout=8, what="RUNNING"
            )
            first = wait_until(lambda: cell(browser, "orders", "read"), what="a read count")
            wait_until(
                lambda: cell(browser, "orders", "read") not in ("", first),
                timeout=8,
                what="the read count to move",
            )
            wait_until(
                lambda: cell(browser, "orders", "rate") not in ("", "-"), what="a rows/s figure"
            )
            assert cell(browser, "orders", "freshness").startswith(("active", "idle"))
            shots.take("running")

            click(browser, "orders", "pause")
            wait_until(
                lambda: worker.status("orders")["state"] == "PAUSED", timeout=8, what="PAUSED"
            )
            wait_until(lambda: cell(browser, "orders", "state") == "PAUSED", timeout=8, what="page")
            assert "pause orders: accepted" in browser.find_element(By.ID, "notice").text
            shots.take("paused")

            click(browser, "orders", "resume")
            wait_until(
                lambda: worker.status("orders")["state"] == "RUNNING", timeout=8, what="resumed"
            )
            wait_until(
                lambda: cell(browser, "orders", "state") == "RUNNING", timeout=8, what="page"
            )
            shots.take("resumed")
        finally:
            stop.set()
            writer.join()
    assert len(list((tmp_path / "screenshots").glob("*.png"))) == 4


def test_the_page_renders_hostile_names_as_text(tmp_path: Path, browser: WebDriver) -> None:
    """A description full of markup shows as text: the script never parses data as HTML."""
    hostile = "<img src=x onerror=\"document.title='owned'\"></script><b>bold</b>"
    extra = f"description: {json.dumps(hostile)}\n"
    write_pipeline(tmp_path / "pipelines", "orders", tmp_path, tmp_path / "in", extra=extra)
    write_orders(tmp_path / "in" / "a.csv", range(1, 3))
    with ServedWorker(tmp_path / "pipelines", public_reads=True) as worker:
        browser.get(worker.base_url + "/")
        wait_until(lambda: hostile in cell(browser, "orders", "name"), what="the description")
        assert browser.title == "omconnect"
        assert not browser.find_elements(By.CSS_SELECTOR, "td.name img, td.name b")
        # Reads are public: the page shows the data, but acting needs the token.
        button = browser.find_element(By.CSS_SELECTOR, 'button[data-action="pause"]')
        assert not button.is_enabled()
