"""The console as a person uses it, for the browser tests: open a view, sign in, wait for what the page loads,
and keep a screenshot of each step (``tests/browser/screenshots/<step>.png``, git-ignored) for people to look at."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as seen
from selenium.webdriver.support.expected_conditions import staleness_of
from selenium.webdriver.support.ui import WebDriverWait

T = TypeVar("T")
REDRAWN = (NoSuchElementException, StaleElementReferenceException)  # an element looked up while the page redraws
WAIT_SECONDS = 15  # the page polls every 5 s while a message is in progress: a receipt shows within two polls


def row_of(comm_id: str) -> str:
    """The message log's row of a communication."""
    return f'table#messages tbody tr[data-comm-id="{comm_id}"]'


class Console:
    def __init__(self, driver: WebDriver, base_url: str, screenshots: Path) -> None:
        self.driver = driver
        self.url = f"{base_url}/console"
        self.screenshots = screenshots

    def open(self, route: str = "") -> None:
        """Load the page afresh at a hash route (``#/messages``); the tab's sessionStorage survives a reload."""
        self.driver.get(f"{self.url}{route}")

    def sign_in(self, key: str) -> None:
        """Paste the key into ``#api-key`` and press Enter, as a person does; the message log shows."""
        field = self.visible("input#api-key")
        field.clear()
        field.send_keys(key, Keys.ENTER)
        self.visible("table#messages")

    def signed_in(self, key: str) -> None:
        """The message log, signing in first when this tab has no key yet."""
        self.open("#/messages")
        if key not in self.session_values():
            self.sign_in(key)
        self.visible("table#messages")

    def listed(self, comm_id: str) -> None:
        """The message log, drawn again by its Refresh button (the rows shown before are gone), listing ``comm_id``."""
        before = self.all("table#messages tbody tr")
        self.visible("button#refresh").click()
        if before:
            self.until(staleness_of(before[0]), "the log to be drawn again")
        self.visible(row_of(comm_id))

    def session_values(self) -> list[str]:
        """Every value in this tab's sessionStorage (the key is one of them once signed in)."""
        return self.driver.execute_script(
            "return Object.keys(sessionStorage).map((name) => sessionStorage.getItem(name));")

    def visible(self, css: str, timeout: float = WAIT_SECONDS) -> WebElement:
        return WebDriverWait(self.driver, timeout).until(seen.visibility_of_element_located((By.CSS_SELECTOR, css)),
                                                         f"{css} visible")

    def gone(self, css: str, timeout: float = WAIT_SECONDS) -> None:
        WebDriverWait(self.driver, timeout).until(seen.invisibility_of_element_located((By.CSS_SELECTOR, css)),
                                                  f"{css} gone")

    def until(self, condition: Callable[[WebDriver], T], what: str, timeout: float = WAIT_SECONDS) -> T:
        """The first truthy value of ``condition`` (element lookups that go stale while the page redraws are
        asked again)."""
        return WebDriverWait(self.driver, timeout, ignored_exceptions=REDRAWN).until(condition, what)

    def all(self, css: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def text_of(self, css: str) -> str:
        return self.visible(css).text.strip()

    def shot(self, step: str) -> Path:
        """A screenshot of the page as it is now, named after the step."""
        self.screenshots.mkdir(exist_ok=True)
        path = self.screenshots / f"{step}.png"
        self.driver.save_screenshot(str(path))
        return path

    def browser_log(self) -> list[str]:
        """The browser console's messages since the last call."""
        return [entry["message"] for entry in self.driver.get_log("browser")]
