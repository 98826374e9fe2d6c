"""Browser fixtures: Debian's chromium, headless, driven by selenium through chromium-driver.

One browser per session (a second one for the tests that need two players); each test
gets fresh pages. ``shot(driver, name)`` saves a screenshot under var/test-artifacts/.
"""

import shutil
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "var" / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def _start_browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="oc-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    return driver, profile


@pytest.fixture(scope="session")
def _browsers():
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail("chromium and chromium-driver are missing: `make test` installs them (APT_PACKAGES)")
    started = []

    def get(index):
        while len(started) <= index:
            started.append(_start_browser())
        return started[index][0]

    yield get
    for driver, profile in started:
        try:
            driver.quit()
        finally:
            shutil.rmtree(profile, ignore_errors=True)


def _fresh(driver):
    driver.get("about:blank")
    for handle in driver.window_handles[1:]:
        driver.switch_to.window(handle)
        driver.close()
    driver.switch_to.window(driver.window_handles[0])
    return driver


@pytest.fixture
def browser(_browsers, stack):
    # about:blank afterwards too: a page left open keeps polling the stack with its token
    # (the rate-limit tests that follow count every request)
    yield _fresh(_browsers(0))
    _fresh(_browsers(0))


@pytest.fixture
def second_browser(_browsers, stack):
    yield _fresh(_browsers(1))
    _fresh(_browsers(1))


@pytest.fixture
def shot():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def save(driver, name):
        path = ARTIFACTS / f"{name}.png"
        driver.save_screenshot(str(path))
        return path

    return save
