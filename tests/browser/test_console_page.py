"""What the console promises beyond its views, in headless Chromium against the local host: its security headers
on every file, the API key in sessionStorage only, every view on a 360 px wide screen, the keyboard alone (its
place kept through the log's own refresh).

Each step leaves a screenshot in ``tests/browser/screenshots/`` (git-ignored), named after it.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
import requests
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.keys import Keys

from fakes.twilio import CallbackPlan, TwilioFake
from gateway.console_page import CONTENT_SECURITY_POLICY
from tests.browser.console import Console, row_of
from tests.browser.host import IN_PROGRESS, log_entries, send
from tests.integration.test_inbound import number
from tests.server import GatewayServer
from tests.waiting import wait_until

HEADERS = {"Content-Security-Policy": CONTENT_SECURITY_POLICY, "X-Content-Type-Options": "nosniff",
           "Referrer-Policy": "no-referrer"}
VIEWS = {"optouts": "table#optouts", "webhook": "input#webhook-url", "messages": "table#messages"}
MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}


def test_every_console_file_carries_the_security_headers(console: Console, server: GatewayServer, key: str) -> None:
    console.signed_in(key)
    loaded = console.driver.execute_script(
        "return performance.getEntriesByType('resource').map((entry) => entry.name);")
    files = sorted({url for url in loaded if urlsplit(url).path.startswith("/console/")})
    assert any(url.endswith(".js") for url in files) and any(url.endswith(".css") for url in files)

    page = requests.get(f"{server.url}/console", timeout=10)  # no key needed for the files
    assert page.status_code == 200
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert page.headers["Cache-Control"] == "no-cache"
    assert {name: page.headers.get(name) for name in HEADERS} == HEADERS
    for url in files:
        answer = requests.get(url, timeout=10)
        assert answer.status_code == 200, url
        media_type = MEDIA_TYPES[url[url.rindex("."):]]
        assert answer.headers["Content-Type"] == f"{media_type}; charset=utf-8", url
        assert answer.headers["Cache-Control"] == "public, max-age=3600", url
        assert {name: answer.headers.get(name) for name in HEADERS} == HEADERS, url
    for missing in ("/console/nope.js", "/console/..%2Fconsole_page.py", "/console/%2E%2E"):
        answer = requests.get(f"{server.url}{missing}", timeout=10)
        assert answer.status_code == 404, missing
        assert answer.headers.get("Content-Security-Policy") == CONTENT_SECURITY_POLICY, missing


def test_the_key_stays_in_session_storage_never_in_a_url_or_a_cookie(
    console: Console, server: GatewayServer, key: str
) -> None:
    console.signed_in(key)
    console.listed(send(server, key, number()))
    console.visible("table#messages tbody tr a.open-journey").click()
    console.visible("section#journey")
    for view, ready in VIEWS.items():
        console.visible(f"a#nav-{view}").click()
        console.visible(ready)
    urls = console.driver.execute_script(
        "return [location.href, document.referrer]"
        "  .concat(performance.getEntries().map((entry) => entry.name));")
    assert len(urls) > 3 and not [url for url in urls if key in url]
    assert console.driver.get_cookies() == []
    assert console.driver.execute_script("return document.cookie") == ""
    assert console.driver.execute_script("return Object.keys(localStorage).length") == 0
    assert key in console.session_values()

    console.visible("button#sign-out").click()
    console.visible("input#api-key")
    assert key not in console.session_values()
    console.shot("17-signed-out")


@pytest.fixture
def phone_screen(console: Console):
    """A 360 px wide phone screen (a mobile viewport honouring the page's meta viewport) for one test."""
    console.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                                   {"width": 360, "height": 740, "deviceScaleFactor": 2, "mobile": True})
    yield
    console.driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


# The text that starts left of arguments[0] px and runs past it, outside a box of its own that scrolls.
CUT_OFF_TEXT = """
const width = arguments[0];
const scrolls = (node) => {
  for (let at = node.parentElement; at; at = at.parentElement) {
    if (["auto", "scroll"].includes(getComputedStyle(at).overflowX)) return true;
  }
  return false;
};
const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
const cut = [];
for (let node = walker.nextNode(); node; node = walker.nextNode()) {
  if (!node.textContent.trim() || !node.parentElement.checkVisibility() || scrolls(node)) continue;
  const range = document.createRange();
  range.selectNodeContents(node);
  // text that starts on the screen and runs past its right edge (a skip link parked off-screen is not)
  if ([...range.getClientRects()].some((rect) => rect.left < width && rect.right > width + 1)) {
    cut.push(node.textContent.trim());
  }
}
return cut;
"""

def fits(console: Console) -> None:
    """The page is laid out at 360 px, nothing makes the body scroll sideways, and no text runs off the screen
    (a wide table may scroll inside its own box)."""
    width, scroll, body = console.driver.execute_script(
        "return [window.innerWidth, document.documentElement.scrollWidth, document.body.scrollWidth];")
    past = console.driver.execute_script(CUT_OFF_TEXT, 360)
    assert (width, past) == (360, []), f"laid out {width} px wide; text past 360 px: {past}"
    assert scroll <= width and body <= width, (width, scroll, body)


@pytest.mark.usefixtures("phone_screen")
def test_every_view_fits_a_360_px_wide_screen(console: Console, server: GatewayServer, key: str) -> None:
    comm_id = send(server, key, number())
    console.open()
    fits(console)
    console.shot("18-phone-sign-in")
    console.signed_in(key)
    console.listed(comm_id)
    fits(console)
    console.shot("19-phone-message-log")
    console.visible(f"{row_of(comm_id)} a.open-journey").click()
    console.visible("section#journey")
    fits(console)
    console.shot("20-phone-journey")
    for view, ready in VIEWS.items():
        console.open(f"#/{view}")
        console.visible(ready)
        fits(console)
        console.shot(f"21-phone-{view}")


def test_the_keyboard_alone_reaches_a_row_and_opens_its_journey(
    console: Console, server: GatewayServer, key: str
) -> None:
    comm_id = send(server, key, number())
    wait_until(lambda: not {entry["Status"] for entry in log_entries(server, key)} & IN_PROGRESS,
               what="every listed message final (the log stops refreshing itself)")
    console.signed_in(key)
    console.listed(comm_id)
    console.driver.execute_script("document.activeElement.blur()")
    keys = ActionChains(console.driver)
    for _ in range(60):
        keys.send_keys(Keys.TAB).perform()
        row = console.driver.execute_script(
            "return document.activeElement.closest('table#messages tbody tr[data-comm-id]');")
        if row is not None:
            break
    else:
        pytest.fail("Tab never reached a row of table#messages")
    focused = console.driver.switch_to.active_element
    outline, shadow = (focused.value_of_css_property(name) for name in ("outline-style", "box-shadow"))
    assert outline != "none" or shadow != "none", "the focused row shows no focus"
    opened = row.get_attribute("data-comm-id")
    console.shot("22-keyboard-row-focused")
    keys.send_keys(Keys.ENTER).perform()
    console.visible("section#journey")
    assert urlsplit(console.driver.current_url).fragment == f"/messages/{opened}"
    console.shot("23-keyboard-journey")


def test_the_logs_own_refresh_keeps_the_keyboards_place(
    console: Console, server: GatewayServer, key: str, twilio: TwilioFake
) -> None:
    console.signed_in(key)
    twilio.callback_plan = CallbackPlan(interval=1.5)  # in progress for the first look, delivered by a later one
    try:
        comm_id = send(server, key, number())
        console.listed(comm_id)
        console.driver.execute_script("document.activeElement.blur()")
        keys = ActionChains(console.driver)
        focused_row = "return document.activeElement.closest('table#messages tbody tr')?.dataset.commId ?? null;"
        for _ in range(60):
            keys.send_keys(Keys.TAB).perform()
            if console.driver.execute_script(focused_row) == comm_id:
                break
        else:
            pytest.fail(f"Tab never reached the row of {comm_id}")
        status = f"{row_of(comm_id)} td.status"
        console.until(lambda d: console.text_of(status) == "Delivered", "the log to show the receipt by itself")
        assert console.driver.execute_script(focused_row) == comm_id, "the refresh lost the focused row"
        keys.send_keys(Keys.ENTER).perform()
        console.visible("section#journey")
        assert urlsplit(console.driver.current_url).fragment == f"/messages/{comm_id}"
    finally:
        twilio.wait_for_callbacks()
        twilio.callback_plan = CallbackPlan()
