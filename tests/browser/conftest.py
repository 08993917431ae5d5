"""The browser tier's fixtures: the local host wired to the Twilio fake, an API key, and headless Chromium.

One host and one browser per module (they take seconds to start; the tests take about one each). Chromium and
ChromeDriver are Debian's (``chromium``, ``chromium-driver``), which ``scripts/bootstrap.sh`` installs where it
may; where they are missing the tier is skipped with that reason, and only then. The browser never reaches the
network: every component that would call home is switched off, and the profile is a fresh folder per module.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from fakes.twilio import TwilioFake
from gateway.runtime import Gateway
from tests.browser.console import Console
from tests.browser.host import LICENSEE
from tests.server import GatewayServer
from tests.twilio_host import twilio_env

INBOUND = "/api/providers/twilio/inbound"
CHROMIUM = ("chromium", "chromium-browser")
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--no-first-run", "--no-default-browser-check",
         "--window-size=1280,900", "--lang=en-US")


def browser_binaries() -> tuple[str, str]:
    """Chromium's and ChromeDriver's paths; skips the test (the reason printed by ``-ra``) when either is missing."""
    browser = next(filter(None, map(shutil.which, CHROMIUM)), None)
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        missing = " and ".join(name for name, path in (("chromium", browser), ("chromedriver", driver)) if not path)
        pytest.skip(f"{missing} not installed: scripts/bootstrap.sh installs the Debian packages chromium and "
                    "chromium-driver where it runs as root or with sudo and apt-get")
    return browser, driver


@pytest.fixture(scope="module")
def env(storage_connection: str, twilio: TwilioFake, port: int) -> dict[str, str]:
    """The host sends through the Twilio fake, which posts status callbacks to it; a webhook may be local."""
    return twilio_env(storage_connection, twilio, port=port, SMS_WEBHOOK_ALLOW_PRIVATE="true")


@pytest.fixture(scope="module")
def server(server: GatewayServer, twilio: TwilioFake) -> GatewayServer:
    """The host, and the fake's inbound webhook pointed at it (a phone's reply reaches the gateway)."""
    twilio.inbound_url = f"{server.url}{INBOUND}"
    return server


@pytest.fixture(scope="module")
def key(gateway: Gateway) -> str:
    return gateway.keys.create(LICENSEE, "console")[1]


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    """Headless Chromium with a fresh profile; explicit waits only (an implicit one would slow every
    "is it gone yet" check), and the browser's console log kept for the checks after each test."""
    browser, chromedriver = browser_binaries()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    chrome = webdriver.Chrome(options=options, service=Service(executable_path=chromedriver))
    chrome.implicitly_wait(0)
    yield chrome
    chrome.quit()


@pytest.fixture(scope="module")
def console(driver: webdriver.Chrome, server: GatewayServer) -> Console:
    return Console(driver, server.url, Path(__file__).resolve().parent / "screenshots")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[pytest.TestReport]:
    """Keep each phase's report on the test, so its fixtures can tell a failed test from a passed one."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(autouse=True)
def no_script_errors(console: Console, request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test: no script error and no Content-Security-Policy violation in the browser's console; a
    failed test leaves a screenshot of the page as it was (``FAILED-<test>.png``)."""
    console.browser_log()
    yield
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        console.shot(f"FAILED-{request.node.name}")
    problems = [entry for entry in console.browser_log()
                if "Content Security Policy" in entry or "Uncaught" in entry]
    assert not problems, f"the browser's console: {problems}"
