"""The console's newer pages in a real headless Chromium (Debian's chromium and
chromedriver, driven by Selenium; nothing downloaded): the overview's 24 h sparklines
with their errors, the identity page, the FHIR Bundle a delivery carried (an operator,
with a reason, then the audit trail), a silence set then ended early, and the audit
trail's chain check.

One engine (MLLP in; an MLLP peer, a destination that needs a qualified identity, and the
fhir-sink test destination behind a ``map: auto`` route) and one browser for the
module; the tests run in file order.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from hl7.client import MLLPClient
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select

import tests._fhir_sink  # noqa: F401 - registers the fhir-sink destination (map: routes)
from eai.console import hash_password
from eai.store import add_account
from standins.mllp import MllpPeer
from tests.engine_harness import EngineThread, adt
from tests.integration.test_console_browser import (
    CHROMEDRIVER,
    CHROMIUM,
    _browser,
    cell,
    follow,
    wait,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

USERS = {
    "vera": ("viewer", "viewer-pass-123"),
    "otto": ("operator", "operator-pass-123"),
    "ada": ("admin", "admin-pass-1234"),
}
NAME = "PAT-TROIS"  # PID-5 of the national fixture

ROUTES = """
engine: {{data_dir: {data}}}
console: {{bind: "127.0.0.1:0", refresh: 0.5s}}
listeners:
  - {{name: chu-x, type: mllp, bind: "127.0.0.1:0", test_feed: true, allowed_senders: [CHU-X]}}
destinations:
  - {{name: dcc, type: mllp, host: 127.0.0.1, port: {dcc}}}
  - name: strict
    type: mllp
    host: 127.0.0.1
    port: {strict}
    require_qualified_identity: true
  - {{name: fhir, type: fhir-sink}}
routes:
  - {{name: to-dcc, from: [chu-x], to: [dcc, strict]}}
  - {{name: to-fhir, from: [chu-x], to: [fhir], map: auto}}
"""


@dataclass
class Site:
    base: str
    driver: WebDriver
    eng: EngineThread

    def go(self, path: str) -> None:
        self.driver.get(self.base + path)

    def login(self, name: str) -> None:
        self.driver.delete_all_cookies()
        self.go("/login")
        self.driver.find_element(By.ID, "user").send_keys(name)
        self.driver.find_element(By.ID, "password").send_keys(USERS[name][1])
        follow(self.driver, self.driver.find_element(By.ID, "login").click)
        self.driver.find_element(By.ID, "whoami")  # logged in

    def text(self, element_id: str) -> str:
        return str(self.driver.find_element(By.ID, element_id).text)

    def spark(self, table: str, row: str) -> tuple[int, int]:
        svg = self.driver.find_element(By.CSS_SELECTOR, f'#{table} tr[data-name="{row}"] svg.spark')
        return int(svg.get_attribute("data-total") or 0), int(svg.get_attribute("data-errors") or 0)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    assert os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK), (
        "install Debian's chromium and chromium-driver (scripts/install-test-peers.sh)"
    )
    tmp = tmp_path_factory.mktemp("console-pages")
    with MllpPeer() as dcc, MllpPeer() as strict:
        path = tmp / "routes.yaml"
        path.write_text(ROUTES.format(data=tmp / "var", dcc=dcc.port, strict=strict.port))
        with EngineThread(path) as eng:
            assert eng.engine.console is not None and eng.engine.store is not None
            for name, (role, password) in USERS.items():
                add_account(eng.engine.store.engine, name, role, hash_password(password))
            driver = _browser(tmp / "chromium-profile")
            try:
                yield Site(f"http://127.0.0.1:{eng.engine.console.port}", driver, eng)
            finally:
                driver.quit()


def _send(site: Site) -> None:
    provisional = adt("PAGE-2").replace(b"|VALI|", b"|PROV|")
    assert provisional != adt("PAGE-2")
    with MLLPClient("127.0.0.1", site.eng.port("chu-x")) as m:
        assert b"MSA|AA" in m.send_message(adt("PAGE-1"))
        assert b"MSA|AA" in m.send_message(provisional)  # held for "strict"
        assert b"MSA|AR" in m.send_message(adt("PAGE-3", facility="CHU-Y"))  # not allowed


def test_overview_sparklines_draw_the_day_with_its_errors(site: Site) -> None:
    site.login("vera")
    wait(lambda: site.driver.find_element(By.ID, "listeners"))
    assert site.spark("listeners", "chu-x") == (0, 0)
    _send(site)
    assert wait(lambda: site.spark("listeners", "chu-x") == (3, 1))  # live, no reload
    wait(lambda: site.spark("destinations", "dcc")[0] == 2)
    wait(lambda: site.spark("routes", "to-fhir")[0] == 2)
    svg = site.driver.find_element(By.CSS_SELECTOR, '#listeners tr[data-name="chu-x"] svg.spark')
    assert svg.is_displayed() and svg.size["width"] == 192 and svg.size["height"] == 24
    assert "3 message(s), 1 error(s)" in str(svg.get_attribute("aria-label"))
    (bar,) = svg.find_elements(By.CSS_SELECTOR, "rect.err")  # the rejected message, in red
    assert bar.is_displayed()
    assert bar.value_of_css_property("fill") == "rgb(176, 0, 32)"
    assert site.driver.execute_script(
        "return performance.getEntriesByType('resource').every("
        "r => r.name.startsWith(location.origin));"
    )  # every asset from the console itself: works offline


def test_identity_page_lists_anomalies_and_held_deliveries(site: Site) -> None:
    site.login("vera")
    follow(site.driver, site.driver.find_element(By.LINK_TEXT, "Identity").click)
    rows = wait(lambda: site.driver.find_elements(By.CSS_SELECTOR, "#anomalies tr.anomaly"))
    rules = {(r.get_attribute("data-facility"), r.get_attribute("data-rule")) for r in rows}
    assert ("CHU-X", "IDENTITE-NON-QUALIFIEE") in rules
    (held,) = wait(lambda: site.driver.find_elements(By.CSS_SELECTOR, "#held tr.held"))
    assert "strict" in held.text and "PAGE-2" in held.text
    assert held.find_elements(By.CSS_SELECTOR, "button.release") == []  # a viewer
    box = site.driver.find_element(By.NAME, "facility")
    box.send_keys("CHU-Y")
    follow(site.driver, box.submit)
    assert "facility=CHU-Y" in site.driver.current_url
    assert site.driver.find_elements(By.CSS_SELECTOR, "#anomalies tr.anomaly") == []
    assert NAME not in site.driver.page_source


def test_operator_opens_the_fhir_bundle_with_a_reason(site: Site) -> None:
    site.login("vera")
    site.go("/messages?control_id=PAGE-1")
    follow(
        site.driver, wait(lambda: site.driver.find_element(By.CSS_SELECTOR, "#results a.msg")).click
    )
    wait(lambda: site.text("journey"))
    assert site.driver.find_elements(By.CSS_SELECTOR, "button.show-output") == []
    message_url = site.driver.current_url

    site.login("otto")
    site.driver.get(message_url)
    rows = wait(lambda: site.driver.find_elements(By.CSS_SELECTOR, "#deliveries tbody tr"))
    (fhir,) = [r for r in rows if cell(r, "td:nth-child(2)") == "fhir"]
    fhir.find_element(By.CSS_SELECTOR, "form.output input[name=reason]").send_keys("ticket 12")
    follow(site.driver, fhir.find_element(By.CSS_SELECTOR, "button.show-output").click)
    bundle = wait(lambda: site.text("bundle"))
    assert '"resourceType": "Bundle"' in bundle and NAME in bundle
    assert site.text("mapping") == "pamfr-adt"
    assert "ticket 12" in site.driver.find_element(By.CSS_SELECTOR, "main p.muted").text


def test_silence_set_then_ended_early_by_the_operator(site: Site) -> None:
    site.login("otto")
    follow(site.driver, site.driver.find_element(By.LINK_TEXT, "Alerts").click)
    form = wait(lambda: site.driver.find_element(By.ID, "new-silence"))
    Select(form.find_element(By.NAME, "rule")).select_by_visible_text("queue_age")
    form.find_element(By.NAME, "scope").send_keys("destination:dcc")
    form.find_element(By.NAME, "reason").send_keys("maintenance DCC")
    follow(site.driver, form.find_element(By.CSS_SELECTOR, "button[type=submit]").click)
    follow(site.driver, site.driver.find_element(By.ID, "confirm").click)
    assert "queue_age on destination:dcc" in wait(lambda: site.text("done"))
    follow(site.driver, site.driver.find_element(By.ID, "back").click)
    (row,) = wait(lambda: site.driver.find_elements(By.CSS_SELECTOR, "#silences tr.silence"))
    assert cell(row, ".author") == "otto" and "maintenance DCC" in row.text
    follow(site.driver, row.find_element(By.CSS_SELECTOR, "button.end-silence").click)
    assert "maintenance DCC" in wait(lambda: site.text("preview"))  # what is being ended
    follow(site.driver, site.driver.find_element(By.ID, "confirm").click)
    assert "ended" in wait(lambda: site.text("done"))
    follow(site.driver, site.driver.find_element(By.ID, "back").click)
    site.driver.find_element(By.ID, "silences")
    assert site.driver.find_elements(By.CSS_SELECTOR, "#silences tr.silence") == []


def test_audit_names_the_operator_and_the_chain_verifies(site: Site) -> None:
    site.login("ada")
    follow(site.driver, site.driver.find_element(By.LINK_TEXT, "Audit").click)
    rows = wait(lambda: site.driver.find_elements(By.CSS_SELECTOR, "#audit tbody tr"))
    seen = {(cell(r, ".actor"), cell(r, ".action")) for r in rows}
    for action in ("read-raw", "silence", "unsilence"):
        assert ("otto (account)", action) in seen, action
    site.driver.find_element(By.NAME, "actor").send_keys("vera")
    follow(site.driver, site.driver.find_element(By.NAME, "actor").submit)
    assert "actor=vera" in site.driver.current_url
    actors = {
        cell(r, ".actor") for r in site.driver.find_elements(By.CSS_SELECTOR, "#audit tbody tr")
    }
    assert actors == {"vera (account)"}
    follow(site.driver, site.driver.find_element(By.ID, "verify").click)
    assert wait(lambda: site.text("chain")).startswith("chain ok")
