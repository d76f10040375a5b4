"""The README's console screenshots: the overview (with a day of sparklines) and a journey.

Run by hand after a change to those pages::

    PYTHONPATH=. .venv/bin/python scripts/console_screenshots.py [--out docs/img]

Touches: files (a tmp dir; writes ``console-overview.png`` and ``console-journey.png``),
network (an engine on 127.0.0.1, two MLLP peers, Debian's headless chromium through its
chromedriver; nothing downloaded).

The journal is seeded with a day of history written straight into its tables (a
daytime curve, a few rejections, a destination that failed for an hour), then a real
engine serves the console while messages arrive over MLLP: the overview shows that day,
the journey is a message that went through the engine.
"""

from __future__ import annotations

import argparse
import math
import random
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from hl7.client import MLLPClient
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from sqlalchemy import insert

from eai.console import hash_password
from eai.store import Store, add_account, utcnow
from eai.store.schema import deliveries, messages
from standins.mllp import MllpPeer
from tests.engine_harness import EngineThread, adt

ROUTES = """
engine: {{data_dir: {data}}}
console: {{bind: "127.0.0.1:0", refresh: 60s}}
listeners:
  - {{name: chu-x-adt, type: mllp, bind: "127.0.0.1:0", test_feed: true}}
  - {{name: clinique-y-adt, type: mllp, bind: "127.0.0.1:0", test_feed: true}}
destinations:
  - {{name: dcc, type: mllp, host: 127.0.0.1, port: {dcc}}}
  - {{name: dpi, type: mllp, host: 127.0.0.1, port: {dpi}}}
routes:
  - {{name: adt-to-dcc, from: [chu-x-adt, clinique-y-adt], to: [dcc]}}
  - {{name: adt-to-dpi, from: [chu-x-adt], to: [dpi]}}
"""
PASSWORD = "screenshot-pass-123"


def seed_history(store: Store) -> None:
    """A day of traffic ending 20 minutes ago: busier by day, ~1 % rejected, and ``dpi``
    failing (retried, then delivered) for an hour in the afternoon."""
    rng = random.Random(22)
    sealed = store.cipher.seal(b"MSH|^~\\&|GAM|CHU-X|...\r")
    end = utcnow() - timedelta(minutes=20)
    rows: list[dict[str, object]] = []
    outs: list[dict[str, object]] = []
    mid = 0
    for minute in range(24 * 60):
        at = end - timedelta(minutes=24 * 60 - minute)
        hour = at.hour + at.minute / 60
        rate = 0.6 + 2.4 * max(0.0, math.sin((hour - 6) / 14 * math.pi))
        for _ in range(int(rate + rng.random())):
            mid += 1
            listener = "chu-x-adt" if rng.random() < 0.7 else "clinique-y-adt"
            rejected = rng.random() < 0.01
            rows.append(
                {
                    "id": mid,
                    "listener": listener,
                    "received_at": at,
                    "content_type": "hl7v2",
                    "status": "rejected" if rejected else "processed",
                    "control_id": f"HIST{mid:06d}",
                    "message_type": "ADT^A01",
                    "sending_application": "GAM",
                    "sending_facility": "CHU-X" if listener == "chu-x-adt" else "CLIN-Y",
                    "size": 900,
                    "payload": sealed,
                }
            )
            if rejected:
                continue
            targets = [("dcc", "adt-to-dcc")]
            if listener == "chu-x-adt":
                targets.append(("dpi", "adt-to-dpi"))
            for dest, route in targets:
                outage = dest == "dpi" and 14 <= hour < 15
                outs.append(
                    {
                        "message_id": mid,
                        "destination": dest,
                        "route": route,
                        "patient_key": "",
                        "status": "delivered",
                        "attempts": 3 if outage else 1,
                        "created_at": at,
                        "next_attempt_at": at,
                        "delivered_at": at,
                    }
                )
    with store.engine.begin() as conn:
        conn.execute(insert(messages), rows)
        conn.execute(insert(deliveries), outs)


def browser(profile: Path) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        "--window-size=1280,820",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs/img"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="eai-shots-") as tmp_name:
        tmp = Path(tmp_name)
        with MllpPeer() as dcc, MllpPeer() as dpi:
            path = tmp / "routes.yaml"
            path.write_text(ROUTES.format(data=tmp / "var", dcc=dcc.port, dpi=dpi.port))
            with EngineThread(path) as eng:
                assert eng.engine.store is not None and eng.engine.console is not None
                seed_history(eng.engine.store)
                add_account(eng.engine.store.engine, "otto", "operator", hash_password(PASSWORD))
                with MLLPClient("127.0.0.1", eng.port("chu-x-adt")) as m:
                    for i in range(1, 13):
                        assert b"MSA|AA" in m.send_message(adt(f"ADM-{i:04d}", f"00{i:04d}"))
                deadline = time.monotonic() + 20
                while len(dpi.received) < 12 and time.monotonic() < deadline:
                    time.sleep(0.1)
                driver = browser(tmp / "profile")
                try:
                    base = f"http://127.0.0.1:{eng.engine.console.port}"
                    driver.get(base + "/login")
                    driver.find_element(By.ID, "user").send_keys("otto")
                    driver.find_element(By.ID, "password").send_keys(PASSWORD)
                    driver.find_element(By.ID, "login").click()
                    driver.find_element(By.ID, "listeners")
                    args.out.mkdir(parents=True, exist_ok=True)
                    driver.save_screenshot(str(args.out / "console-overview.png"))
                    driver.get(base + "/messages?control_id=ADM-0012")
                    driver.find_element(By.CSS_SELECTOR, "#results a.msg").click()
                    driver.find_element(By.ID, "journey")
                    driver.save_screenshot(str(args.out / "console-journey.png"))
                finally:
                    driver.quit()
    for name in ("console-overview.png", "console-journey.png"):
        print(args.out / name, (args.out / name).stat().st_size, "bytes")


if __name__ == "__main__":
    main()
