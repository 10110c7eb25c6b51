"""The browser tests' harness: the app served over real HTTP on 127.0.0.1, and a headless
Chromium (Debian's ``chromium`` and ``chromium-driver``) driven by Selenium.

A test module makes the fixtures it uses its own (pytest finds fixtures by module
attribute; an assignment, not an import, so ruff sees no unused import redefined)::

    from tests.ihook.console import browser
    chromium, live_url, web = browser.chromium, browser.live_url, browser.web

and walks the console through ``web``, a ``Browser``, by the texts people see::

    web.sign_in().open("/endpoints/new").look("step-1")
    web.fill("Name", "shop").click("Next").look("step-2")

``look`` is the check every page gets: a screenshot at each screen width, no page-wide
horizontal scroll at phone width, and nothing but quiet in the browser's console.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from werkzeug.serving import WSGIRequestHandler, make_server

from tests.conftest import ADMIN_TOKEN

try:
    from selenium import webdriver
    from selenium.common.exceptions import (
        NoAlertPresentException,
        NoSuchElementException,
        StaleElementReferenceException,
        WebDriverException,
    )
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.remote.webelement import WebElement
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import Select, WebDriverWait
except ImportError:  # the test extra not installed: ``chromium`` says so
    webdriver = None  # type: ignore[assignment]

DESKTOP = (1280, 800)
"""The desktop screen every page must suit (window size, browser chrome included)."""
PHONE = (375, 812)
"""The phone-width screen every page must suit."""
WIDTHS = (DESKTOP, PHONE)
"""The screens ``Browser.look`` checks, in order."""
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
"""Debian's Chromium (apt package ``chromium``)."""
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
"""Debian's driver of it (apt package ``chromium-driver``); given to Selenium explicitly so
Selenium Manager never downloads one."""
ARGUMENTS = ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu")
"""Chromium flags: headless, and able to run as root in a container (CI)."""
WAIT = 10.0
"""Seconds to wait for a page to change or a dialog to open."""
REPO = Path(__file__).resolve().parents[3]
"""The repository root (for the default artifacts folder)."""
WIDE_ELEMENTS = """
var limit = window.innerWidth + 1, found = [];
document.querySelectorAll("body *").forEach(function (el) {
  var box = el.getBoundingClientRect(), position = getComputedStyle(el).position;
  var clipped = el.parentElement && el.parentElement.closest(".scroll")
    && position !== "absolute" && position !== "fixed";
  if (box.right > limit && !clipped) {
    found.push(el.tagName.toLowerCase() + (el.id ? "#" + el.id : "")
      + (el.getAttribute("class") ? "." + el.getAttribute("class").split(" ").join(".") : "")
      + (position === "static" ? "" : " (" + position + ")") + " to " + Math.round(box.right));
  }
});
var walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT), node;
while ((node = walker.nextNode()) && found.length < 8) {
  var range = document.createRange();
  range.selectNodeContents(node);
  var right = range.getBoundingClientRect().right, parent = node.parentElement;
  if (right > limit && node.textContent.trim() && !parent.closest(".scroll")) {
    found.push("text of " + parent.tagName.toLowerCase()
      + " '" + node.textContent.trim().slice(0, 60) + "' to " + Math.round(right));
  }
}
return found.slice(0, 8);
"""
"""Script naming the elements, and the texts overflowing their element, that reach past
the window's right edge, unless a ``.scroll`` box clips them."""
STATIC = "/static/"
"""Where the console's own files are served from (a failed load of one fails a test)."""


def artifacts_dir() -> Path:
    """Where screenshots go: ``$IHOOK_TEST_ARTIFACTS``, else ``test-artifacts/screenshots``."""
    configured = os.environ.get("IHOOK_TEST_ARTIFACTS")
    folder = Path(configured) if configured else REPO / "test-artifacts" / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def missing(reason: str) -> None:
    """Fail in CI (``CI=true``), where the browser must be there; skip elsewhere."""
    message = f"browser tests need {reason}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (.ci/run installs them)", pytrace=False)
    pytest.skip(message)


def start_chromium(*, javascript: bool = True) -> WebDriver:
    """A headless Chromium logging its console, at desktop size; ``javascript`` off
    blocks every script, as a reader with JavaScript disabled has it."""
    if webdriver is None:
        missing("selenium (pip install -e '.[test]')")
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not Path(path).exists():
            missing(f"{path} (apt-get install {package})")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ARGUMENTS:
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    if not javascript:
        options.add_experimental_option(
            "prefs", {"profile.managed_default_content_settings.javascript": 2}
        )
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    driver.set_window_size(*DESKTOP)
    return driver


@pytest.fixture(scope="module")
def chromium() -> Iterator[WebDriver]:
    """One headless Chromium for a test module (starting one costs about a second)."""
    driver = start_chromium()
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def chromium_no_js() -> Iterator[WebDriver]:
    """A headless Chromium with JavaScript disabled, for a test module."""
    driver = start_chromium(javascript=False)
    yield driver
    driver.quit()


class RequestHandler(WSGIRequestHandler):
    """Werkzeug's, logging no line for a request to an ingest URL: its path holds the
    endpoint's key, which the suite's log sweep finds."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        if not getattr(self, "path", "").startswith("/hooks/"):
            super().log_request(code, size)


@pytest.fixture
def live_url(app) -> Iterator[str]:
    """The test's app served by werkzeug's threaded HTTP server on 127.0.0.1 (a free port),
    in a thread of the test process; its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=RequestHandler)
    thread = threading.Thread(target=server.serve_forever, name="live-app", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(10)
    server.server_close()


def replaced(page: WebElement) -> bool:
    """Whether ``page`` (a document's root element) is no longer the document's. While the
    next page loads, Chromium may answer an inspector error instead: not yet, ask again."""
    try:
        page.is_enabled()
    except StaleElementReferenceException:
        return True
    except WebDriverException:
        return False
    return False


class Browser:
    """A Chromium at the console of ``base_url``, used the way a person does: by the
    texts of links, buttons and labels. Screenshots are named after ``test``."""

    def __init__(self, driver: WebDriver, base_url: str, test: str, *, javascript: bool = True):
        self.driver = driver
        self.base_url = base_url
        self.test = re.sub(r"[^A-Za-z0-9_.-]+", "-", test).strip("-")
        self.javascript = javascript
        try:  # a dialog a failed test left open would block every command
            driver.switch_to.alert.dismiss()
        except NoAlertPresentException:
            pass
        # Cookies are per host, not port: no session carries over from an earlier test.
        driver.execute_cdp_cmd("Network.clearBrowserCookies", {})
        driver.get("about:blank")
        driver.set_window_size(*DESKTOP)
        driver.get_log("browser")  # what the last test left

    # Going places.

    def open(self, path: str) -> Browser:
        """Load a console page: ``open("/runs?status=failed")``."""
        self.driver.get(f"{self.base_url}/ui{path}")
        return self

    @property
    def path(self) -> str:
        """The current page's path and query (``/ui/runs?status=failed``)."""
        parts = urlsplit(self.driver.current_url)
        return f"{parts.path}?{parts.query}" if parts.query else parts.path

    @property
    def text(self) -> str:
        """The page's visible text, white space squeezed."""
        return " ".join(self.driver.find_element(By.TAG_NAME, "body").text.split())

    def follow(self, text: str) -> Browser:
        """Click the first visible link whose text is ``text`` and wait for its page."""
        links = self.driver.find_elements(By.XPATH, f"//a[normalize-space()={xpath_text(text)}]")
        shown = [link for link in links if link.is_displayed()]
        assert shown, f"no visible link {text!r} on {self.path}"
        self._navigate(shown[0].click)
        return self

    def menu(self) -> list[str]:
        """The texts of the main menu's links, in order."""
        return [link.text for link in self.driver.find_elements(By.CSS_SELECTOR, "header nav a")]

    # Forms.

    def field(self, label: str) -> WebElement:
        """The field a ``<label for=…>`` with the text ``label`` names (proving it has one);
        an exact text match first, else the one label that starts with it."""
        labels = self.driver.find_elements(
            By.XPATH, f"//label[normalize-space()={xpath_text(label)}]"
        ) or self.driver.find_elements(
            By.XPATH, f"//label[starts-with(normalize-space(), {xpath_text(label)})]"
        )
        assert len(labels) == 1, f"{len(labels)} labels {label!r} on {self.path}"
        target = labels[0].get_attribute("for")
        assert target, f"label {label!r} names no field (no for=) on {self.path}"
        try:
            element = self.driver.find_element(By.ID, target)
        except NoSuchElementException:
            raise AssertionError(f"label {label!r} names #{target}, which is not there") from None
        self._reveal(element)
        return element

    def _reveal(self, element: WebElement) -> None:
        """Open the closed ``<details>`` hiding ``element`` by clicking their summaries."""
        closed = element.find_elements(By.XPATH, "./ancestor::details[not(@open)]")
        for details in closed:
            details.find_element(By.XPATH, "./summary").click()

    def fill(self, label: str, value: str | bool) -> Browser:
        """Set the field labelled ``label``: type into inputs and text areas, pick a select's
        option by its text (or value), tick or untick a checkbox or radio (``value`` bool)."""
        element = self.field(label)
        kind = (element.get_attribute("type") or "").lower()
        if element.tag_name == "select":
            choice = Select(element)
            try:
                choice.select_by_visible_text(str(value))
            except NoSuchElementException:
                choice.select_by_value(str(value))
        elif kind in ("checkbox", "radio"):
            if element.is_selected() != bool(value):
                element.click()
        else:
            element.clear()
            element.send_keys(str(value))
        return self

    def click(self, text: str) -> Browser:
        """Press the visible button with the text ``text`` and wait for the next page."""
        return self.press(self.button(text))

    def button(self, text: str) -> WebElement:
        """The first visible button with the text ``text`` (one hidden from people with
        ``aria-hidden``, such as a form's default for the Enter key, is not one)."""
        buttons = self.driver.find_elements(
            By.XPATH,
            f"//button[normalize-space()={xpath_text(text)} and not(@aria-hidden='true')]"
            f" | //input[@type='submit' and @value={xpath_text(text)}]",
        )
        shown = [button for button in buttons if button.is_displayed()]
        assert shown, f"no visible button {text!r} on {self.path}"
        return shown[0]

    def tap(self, text: str) -> Browser:
        """Press the visible button ``text`` that acts on the page itself (a script's
        button: add a row, insert a template), with no page to wait for."""
        self.button(text).click()
        return self

    def shows(self, label: str) -> bool:
        """Whether the field labelled ``label`` is shown (a script may hide it)."""
        return self.field(label).is_displayed()

    def submit(self, label: str) -> Browser:
        """Press the (first) submit button of the form holding the field labelled ``label``."""
        form = self.field(label).find_element(By.XPATH, "./ancestor::form")
        buttons = form.find_elements(
            By.CSS_SELECTOR, "button:not([type=button]):not([type=reset]), input[type=submit]"
        )
        assert buttons, f"the form of {label!r} has no submit button on {self.path}"
        return self.press(buttons[0])

    def press(self, button: WebElement) -> Browser:
        """Press ``button`` and wait for the next page; a form with ``data-confirm`` asks
        that question first (when JavaScript runs), answered OK here."""
        question = self.driver.execute_script(
            "var f = arguments[0].form; return f && f.getAttribute('data-confirm');", button
        )
        if not (question and self.javascript):
            self._navigate(button.click)
            return self

        def press_and_confirm() -> None:
            button.click()
            alert = WebDriverWait(self.driver, WAIT).until(expected_conditions.alert_is_present())
            assert alert.text == question, (alert.text, question)
            alert.accept()

        self._navigate(press_and_confirm)
        return self

    def sign_in(self, token: str = ADMIN_TOKEN) -> Browser:
        """Sign in on the sign-in page with an API token (the admin token unless given)."""
        if not self.path.startswith("/ui/sign-in"):
            self.open("/sign-in")
        return self.fill("API token", token).submit("API token")

    def _navigate(self, act: Callable[[], None]) -> None:
        """Do ``act`` and wait until the page it leads to has replaced this one."""
        page = self.driver.find_element(By.TAG_NAME, "html")
        act()
        WebDriverWait(self.driver, WAIT).until(lambda _: replaced(page))
        WebDriverWait(self.driver, WAIT).until(
            lambda d: d.execute_script("return document.readyState") == "complete"
        )

    # Checks.

    def look(self, step: str) -> Browser:
        """Check the page at each screen width: a screenshot, no page-wide horizontal
        scroll at phone width, no error in the browser's console. Back at desktop size."""
        try:
            for width, height in WIDTHS:
                self.driver.set_window_size(width, height)
                self.shot(step)
                if (width, height) == PHONE:
                    self.no_horizontal_scroll(step)
        finally:
            self.driver.set_window_size(*DESKTOP)
        self.no_console_errors(step)
        return self

    def shot(self, step: str) -> Path:
        """Save a PNG of the whole page as ``<test>-<step>-<width>.png`` in the artifacts
        folder (taller and wider than the window where the page is)."""
        width = self.driver.execute_script("return window.innerWidth")
        path = artifacts_dir() / f"{self.test}-{step}-{width}.png"
        metrics = self.driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
        content = metrics["cssContentSize"]
        clip = {
            "x": 0,
            "y": 0,
            "width": max(content["width"], width),
            "height": content["height"],
            "scale": 1,
        }
        taken = self.driver.execute_cdp_cmd(
            "Page.captureScreenshot",
            {"format": "png", "captureBeyondViewport": True, "clip": clip},
        )
        path.write_bytes(base64.b64decode(taken["data"]))
        return path

    def no_horizontal_scroll(self, step: str = "") -> None:
        """Assert the page itself does not scroll sideways (a wide table may, inside its
        ``.scroll`` box); names the widest elements when it does."""
        scroll_width, inner_width = self.driver.execute_script(
            "return [document.documentElement.scrollWidth, window.innerWidth]"
        )
        if scroll_width <= inner_width + 1:
            return
        culprits = self.driver.execute_script(WIDE_ELEMENTS)
        raise AssertionError(
            f"{self.path} ({step}) scrolls sideways at {inner_width} px: "
            f"{scroll_width} px wide; too wide: {culprits}"
        )

    def console_errors(self) -> list[str]:
        """The errors the browser logged since the last call: script errors, CSP refusals,
        ``console.error``, and failed loads of the console's static files."""
        return [entry["message"] for entry in self.driver.get_log("browser") if is_error(entry)]

    def no_console_errors(self, step: str = "") -> None:
        """Assert the browser logged no error since the last check."""
        errors = self.console_errors()
        assert not errors, f"browser console errors at {self.path} ({step}): {errors}"


def is_error(entry: dict) -> bool:
    """Whether a browser log entry is an error of the page. A page answered with an error
    status on purpose (a refused sign-in is a 401) is logged as a failed load too, and so
    is the favicon Chromium asks every site for: failed loads count only for static files."""
    if entry["level"] != "SEVERE":
        return False
    if entry.get("source") != "network":
        return True
    url = entry["message"].split(" ", 1)[0]
    return STATIC in urlsplit(url).path


def xpath_text(text: str) -> str:
    """``text`` as an XPath string literal (XPath 1.0 has no escapes: concat() the quotes)."""
    if "'" not in text:
        return f"'{text}'"
    if '"' not in text:
        return f'"{text}"'
    return "concat(" + ', "\'", '.join(f"'{part}'" for part in text.split("'")) + ")"


@pytest.fixture
def web(chromium: WebDriver, live_url: str, request: pytest.FixtureRequest) -> Iterator[Browser]:
    """The module's Chromium at this test's live app, not signed in; at the end, the
    browser's console must hold no error the test's last ``look`` did not see."""
    browser = Browser(chromium, live_url, request.node.name)
    yield browser
    browser.no_console_errors("end of test")


@pytest.fixture
def web_no_js(
    chromium_no_js: WebDriver, live_url: str, request: pytest.FixtureRequest
) -> Iterator[Browser]:
    """Like ``web``, in a Chromium with JavaScript disabled."""
    browser = Browser(chromium_no_js, live_url, f"{request.node.name}-nojs", javascript=False)
    yield browser
    browser.no_console_errors("end of test")
