"""The web console in a real headless Chromium (Debian's chromium and chromedriver, driven
by Selenium; nothing downloaded): log in, counters moving live, search, journey, roles,
a replay the audit trail attributes, pause/resume with the queue growing and draining,
lock-out.

One engine and one browser for the module; the tests run in file order and each
starts from the login page.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hl7.client import MLLPClient
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from eai.console import hash_password
from eai.store import add_account
from standins.mllp import MllpPeer
from tests.engine_harness import EngineThread, adt, write_routes

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SECRET_NAME = "NAVIGATEURNOM"
PATIENT = "5566778"
USERS = {
    "vera": ("viewer", "viewer-pass-123"),
    "otto": ("operator", "operator-pass-123"),
    "ada": ("admin", "admin-pass-1234"),
    "lou": ("viewer", "locked-pass-1234"),
}
CONSOLE = "console:\n  bind: 127.0.0.1:0\n  refresh: 0.5s\n  lock_after: 3\n"


def _message(control_id: str) -> bytes:
    segs = adt(control_id, PATIENT).decode().split("\r")
    for i, seg in enumerate(segs):
        if seg.startswith("PID"):
            f = seg.split("|")
            f[5] = f"{SECRET_NAME}^MARIE"
            segs[i] = "|".join(f)
    return "\r".join(segs).encode()


@dataclass
class Site:
    base: str
    driver: WebDriver
    eng: EngineThread
    sink: MllpPeer

    def go(self, path: str) -> None:
        self.driver.get(self.base + path)

    def login(self, name: str, password: str | None = None) -> None:
        self.driver.delete_all_cookies()
        self.go("/login")
        self.driver.find_element(By.ID, "user").send_keys(name)
        self.driver.find_element(By.ID, "password").send_keys(password or USERS[name][1])
        self.submit("#login")

    def send(self, *control_ids: str) -> None:
        with MLLPClient("127.0.0.1", self.eng.port("chu-x-adt")) as m:
            for cid in control_ids:
                assert b"MSA|AA" in m.send_message(_message(cid))

    def cell(self, table: str, row: str, column: str) -> str:
        css = f'#{table} tr[data-name="{row}"] td.{column}'
        return str(self.driver.find_element(By.CSS_SELECTOR, css).text)

    def submit(self, css: str) -> None:
        """Clicks ``css`` (a button that posts a form, or a link) and waits for the page it
        loads. Found and clicked again only if the live refresh replaced it before the
        click (a stale element is never clicked): never a second submission."""

        def once() -> bool:
            try:
                self.driver.find_element(By.CSS_SELECTOR, css).click()
            except StaleElementReferenceException:
                return False
            return True

        follow(self.driver, lambda: wait(once))

    def text(self, element_id: str) -> str:
        return str(self.driver.find_element(By.ID, element_id).text)


def cell(row: Any, css: str) -> str:
    return str(row.find_element(By.CSS_SELECTOR, css).text)


def follow(driver: WebDriver, click: Callable[[], Any]) -> None:
    """Runs ``click``, which leaves the page (a form posted, a link followed), and waits
    until the browser shows the page it loads. A click returns before the navigation it
    starts ends (under load, well before): what is read next must come from the new
    page, and a new navigation (``get``, deleted cookies) must not cut the request short."""
    old = driver.find_element(By.TAG_NAME, "html")
    click()

    def loaded() -> bool:
        try:
            old.is_enabled()  # raises once the page is replaced
        except StaleElementReferenceException:
            return bool(driver.execute_script("return document.readyState === 'complete';"))
        return False

    wait(loaded)


def wait(what: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = what()
        except Exception as exc:  # noqa: BLE001 - the page is being replaced
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out; last: {last!r}")


def _browser(profile: Path) -> WebDriver:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--window-size=1280,1000",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    assert os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK), (
        "install Debian's chromium and chromium-driver (scripts/install-test-peers.sh)"
    )
    tmp = tmp_path_factory.mktemp("console-browser")
    with MllpPeer() as sink:
        path = write_routes(tmp, sink.port, extra=CONSOLE)
        with EngineThread(path) as eng:
            assert eng.engine.console is not None
            store = eng.engine.store  # not a second Store: see test_console_http.Console.store
            assert store is not None
            for name, (role, password) in USERS.items():
                add_account(store.engine, name, role, hash_password(password))
            driver = _browser(tmp / "chromium-profile")
            try:
                yield Site(f"http://127.0.0.1:{eng.engine.console.port}", driver, eng, sink)
            finally:
                driver.quit()


def test_counters_move_live_search_and_journey_as_viewer(site: Site) -> None:
    site.go("/messages")
    assert "/login" in site.driver.current_url  # anonymous: the login page
    site.login("vera")
    wait(lambda: site.driver.find_element(By.ID, "listeners"))
    assert site.text("whoami") == "vera (viewer)"
    before = int(wait(lambda: site.cell("listeners", "chu-x-adt", "received")))
    site.driver.execute_script("window.notReloaded = true;")
    site.send("WEB-1", "WEB-2", "WEB-3")
    wait(lambda: int(site.cell("listeners", "chu-x-adt", "received")) == before + 3)
    wait(lambda: int(site.cell("destinations", "dcc", "delivered")) >= 3)
    assert site.driver.execute_script("return window.notReloaded === true;")  # live, no reload

    site.submit('nav a[href="/messages"]')
    site.driver.find_element(By.ID, "control_id").send_keys("WEB-2")
    site.submit("#search")
    links = wait(lambda: site.driver.find_elements(By.CSS_SELECTOR, "#results a.msg"))
    assert [c.text for c in site.driver.find_elements(By.CSS_SELECTOR, "td.control-id")] == [
        "WEB-2"
    ]
    follow(site.driver, links[0].click)
    journey = wait(lambda: site.text("journey"))
    assert "received" in journey and "delivered" in journey
    assert site.text("control-id") == "WEB-2"
    assert site.driver.find_elements(By.ID, "show-raw") == []
    assert "not shown to the viewer role" in site.text("no-payload")
    assert SECRET_NAME not in site.driver.page_source and PATIENT not in site.driver.page_source

    site.go("/messages")
    site.driver.find_element(By.ID, "patient").send_keys(PATIENT)
    site.submit("#search")
    found = wait(lambda: site.driver.find_elements(By.CSS_SELECTOR, "td.control-id"))
    assert sorted(c.text for c in found) == ["WEB-1", "WEB-2", "WEB-3"]
    assert PATIENT not in site.driver.page_source  # not echoed back in the form


def test_operator_reads_replays_and_the_audit_shows_who(site: Site) -> None:
    site.login("otto")
    wait(lambda: site.driver.find_element(By.ID, "listeners"))
    site.go("/messages/1")
    site.driver.find_element(By.ID, "reason").send_keys("ticket 77")
    site.submit("#show-raw")
    assert SECRET_NAME in wait(lambda: site.text("payload"))
    site.go("/messages/1")
    site.submit("#replay")
    assert "would go to dcc" in wait(lambda: site.text("preview"))
    site.submit("#confirm")
    assert "replayed" in wait(lambda: site.text("done"))
    site.go("/audit")
    assert "needs the admin role" in site.text("error")

    site.login("ada")
    wait(lambda: site.driver.find_element(By.ID, "listeners"))
    site.go("/audit")
    rows = [
        (cell(r, ".actor"), cell(r, ".action"))
        for r in site.driver.find_elements(By.CSS_SELECTOR, "#audit tbody tr")
    ]
    assert ("otto (account)", "replay") in rows and ("otto (account)", "read-raw") in rows
    site.submit("#verify")
    assert wait(lambda: site.text("chain")).startswith("chain ok")


def test_pause_queue_grows_resume_drains(site: Site) -> None:
    site.login("otto")
    wait(lambda: site.driver.find_element(By.ID, "destinations"))
    site.submit('#destinations tr[data-name="dcc"] button.pause')
    site.submit("#confirm")
    assert wait(lambda: site.text("done")) == "dcc paused"
    site.go("/")
    wait(lambda: site.cell("destinations", "dcc", "state") == "paused")
    site.send("PAUSE-1", "PAUSE-2", "PAUSE-3", "PAUSE-4")
    wait(lambda: int(site.cell("destinations", "dcc", "depth")) == 4)
    time.sleep(1.5)  # paused: nothing leaves
    assert wait(lambda: site.cell("destinations", "dcc", "depth")) == "4"
    site.submit('#destinations tr[data-name="dcc"] button.resume')
    site.submit("#confirm")
    assert wait(lambda: site.text("done")) == "dcc resumed"
    site.go("/")
    wait(lambda: int(site.cell("destinations", "dcc", "depth")) == 0, 30)
    wait(lambda: site.cell("destinations", "dcc", "state") == "active")


def test_a_button_held_across_refreshes_keeps_its_click(site: Site) -> None:
    """The live refresh replaces the tables; a button pressed when new ones arrive must
    still get its click (a person presses for a tenth of a second, a loaded machine's
    driver for longer): here held over two refreshes, then released."""
    site.login("otto")
    css = '#destinations tr[data-name="dcc"] button.pause'

    def press() -> bool:
        try:
            button = site.driver.find_element(By.CSS_SELECTOR, css)
            ActionChains(site.driver).click_and_hold(button).perform()
        except StaleElementReferenceException:
            return False  # replaced before the press: nothing pressed yet
        return True

    def rounds() -> int:
        return int(
            site.driver.execute_script(
                "return performance.getEntriesByType('resource')"
                ".filter(function (e) { return e.name.endsWith('/overview/rows'); }).length;"
            )
        )

    wait(press)
    held = rounds()
    wait(lambda: rounds() >= held + 2)  # one whole round fetched and answered while held
    follow(site.driver, ActionChains(site.driver).release().perform)
    assert site.driver.find_element(By.ID, "confirm").text == "Confirm: pause destination dcc"


def test_wrong_passwords_lock_the_account(site: Site) -> None:
    for _ in range(3):
        site.login("lou", "not-the-password")
    assert "locked" in site.text("login-error")
    site.login("lou")  # the right password: still locked
    assert "locked" in site.text("login-error")
    assert "/login" in site.driver.current_url
