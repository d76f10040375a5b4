"""The alert state machine and its mails, without I/O: transitions, storm control
(once firing, repeats at most every repeat_every, once resolved), silences, inhibition;
the mail's French text; the rules' config; the TLS-rejection and journal signals."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import pytest
from pydantic import ValidationError

from eai.alerts import Observation, Policy, Signals, TlsRejectionWatch, build_alert_mail, decide
from eai.config import AlertsConfig
from eai.store import AlertRow, ClaimedNotice, Silence

T0 = datetime(2026, 12, 7, 1, 0, 0)
SCOPE = "destination:dcc"


def policy(repeat: float = 3600.0, hold: float = 0.0) -> Policy:
    return Policy(
        repeat_every=repeat,
        hold_for={"destination_failing": hold},
        recipients=lambda rule, facilities: ("region@x.test", *(f"{f}@x.test" for f in facilities)),
    )


class Run:
    """Evaluations in sequence, keeping the rows as the journal would."""

    def __init__(self, pol: Policy) -> None:
        self.rows: dict[tuple[str, str], AlertRow] = {}
        self.mails: list[tuple[str, str, str]] = []
        self.policy = pol
        self.silences: list[Silence] = []

    def step(self, at: float, *obs: tuple[str, bool]) -> None:
        now = T0 + timedelta(seconds=at)
        observations = [
            Observation(rule, SCOPE, bad, f"value at {at}", ("CHU-X",)) for rule, bad in obs
        ]
        changes = decide(self.rows, self.silences, observations, now, self.policy)
        for row in changes.rows:
            self.rows[(row.rule, row.scope)] = row
        self.mails += [(n.rule, n.kind, n.recipient) for n in changes.notices]

    def state(self, rule: str = "destination_failing") -> str:
        return self.rows[(rule, SCOPE)].state


def test_firing_mails_once_per_recipient_then_resolved_once() -> None:
    run = Run(policy())
    run.step(0, ("destination_failing", False))
    assert run.state() == "ok" and run.mails == []
    for t in range(1, 50):
        run.step(t, ("destination_failing", True))
    assert run.state() == "firing"
    assert run.mails == [
        ("destination_failing", "firing", "region@x.test"),
        ("destination_failing", "firing", "CHU-X@x.test"),
    ]
    run.step(50, ("destination_failing", False))
    run.step(51, ("destination_failing", False))
    assert run.state() == "resolved"
    assert [m[1] for m in run.mails] == ["firing", "firing", "resolved", "resolved"]


def test_pending_until_for_and_back_to_ok_without_a_mail() -> None:
    run = Run(policy(hold=10))
    run.step(0, ("destination_failing", True))
    assert run.state() == "pending"
    run.step(5, ("destination_failing", True))
    assert run.state() == "pending"
    run.step(6, ("destination_failing", False))
    assert run.state() == "ok" and run.mails == []
    run.step(7, ("destination_failing", True))
    run.step(17, ("destination_failing", True))
    assert run.state() == "firing" and len(run.mails) == 2


def test_repeats_at_most_every_repeat_every_with_the_count() -> None:
    run = Run(Policy(3600.0, {}, lambda rule, f: ("r@x.test",)))
    run.step(0, ("destination_failing", True))
    for minute in range(1, 200):  # 3 h 19 min firing, evaluated each minute
        run.step(60 * minute, ("destination_failing", True))
    assert [k for _, k, _ in run.mails] == ["firing", "repeat", "repeat", "repeat"]
    assert run.rows[("destination_failing", SCOPE)].mails == 4


def test_a_silence_suppresses_firing_and_resolved_and_its_end_lets_firing_through() -> None:
    run = Run(policy())
    run.silences = [Silence(1, "destination_failing", "destination:dcc", T0, T0, "ops", "x")]
    run.step(0, ("destination_failing", True))
    run.step(1, ("destination_failing", False))
    assert run.state() == "resolved" and run.mails == []  # never mailed firing: no resolved
    run.step(2, ("destination_failing", True))
    run.silences = []  # the silence ended while it still fires
    run.step(3, ("destination_failing", True))
    assert [k for _, k, _ in run.mails] == ["firing", "firing"]


def test_silence_matching() -> None:
    s = Silence(1, "listener_down", "listener:adt", T0, T0, "ops", "x")
    assert s.matches("listener_down", "listener:adt")
    assert s.matches("listener_down", "listener:adt@node-2")
    assert not s.matches("listener_down", "listener:adt2")
    assert not s.matches("queue_age", "listener:adt")
    assert Silence(2, "*", "", T0, T0, "ops", "x").matches("queue_age", "destination:x")


def test_a_destination_down_inhibits_its_queue_age_until_that_resolves() -> None:
    run = Run(policy())
    run.step(0, ("destination_failing", True), ("queue_age", False))
    run.step(1, ("destination_failing", True), ("queue_age", True))
    assert run.state("queue_age") == "firing"
    # the destination is back; its queue drains: still attributed to the outage
    run.step(2, ("destination_failing", False), ("queue_age", True))
    run.step(3, ("destination_failing", False), ("queue_age", False))
    kinds = [(r, k) for r, k, _ in run.mails]
    assert ("queue_age", "firing") not in kinds and ("queue_age", "resolved") not in kinds
    assert kinds.count(("destination_failing", "resolved")) == 2


def test_an_unchanged_ok_row_is_not_written_again() -> None:
    run = Run(policy())
    run.step(0, ("destination_failing", False))
    changes = decide(
        run.rows,
        [],
        [Observation("destination_failing", SCOPE, False, "other value", ("CHU-X",))],
        T0 + timedelta(seconds=5),
        run.policy,
    )
    assert changes.rows == [] and changes.notices == []


def test_the_mail_is_french_plain_text_with_the_command_to_investigate() -> None:
    notices = [
        ClaimedNotice(1, "destination_failing", SCOPE, "firing", "r@x.test", T0, "200 en attente"),
        ClaimedNotice(2, "rejected_rate", "establishment:CHU-X", "resolved", "r@x.test", T0, "0"),
    ]
    mail = build_alert_mail("r@x.test", notices, sender="eai@x.test", node="n1")
    body = mail.get_content()
    assert mail["To"] == "r@x.test" and mail.get_content_type() == "text/plain"
    assert mail["Subject"] == (
        "[eai] 2 alertes (1 en cours, 1 résolue(s)) : destination dcc en échec; "
        "messages rejetés de CHU-X"
    )
    assert "[EN COURS] destination dcc en échec" in body and "[RÉSOLUE]" in body
    assert "Pour examiner : eai messages list --status rejected --since 1h" in body
    assert "http" not in body


def test_alerts_config_defaults_every_rule_and_refuses_unknown_ones() -> None:
    cfg = AlertsConfig.model_validate({"notify": ["a@x.test"]})
    assert len(cfg.rules) == 10 and cfg.repeat_every == 4 * 3600
    cfg = AlertsConfig.model_validate(
        {"rules": [{"rule": "destination_failing", "after": "5s", "for": "1s", "only": ["dcc"]}]}
    )
    rule = cfg.rules[0]
    assert (rule.after, rule.for_, rule.only) == (5.0, 1.0, ("dcc",))  # type: ignore[union-attr]
    with pytest.raises(ValidationError):
        AlertsConfig.model_validate({"rules": [{"rule": "no_such_rule"}]})
    with pytest.raises(ValidationError):
        AlertsConfig.model_validate({"rules": [{"rule": "queue_age", "after": "5s"}]})


def test_signals_count_journal_failures_and_certificate_rejections() -> None:
    clock = [1000.0]
    signals = Signals(clock=lambda: clock[0])
    signals.journal_failed()
    clock[0] += 100
    assert signals.journal_failures(60) == (0, 100.0)
    assert signals.journal_failures(300) == (1, 100.0)
    watch = TlsRejectionWatch(signals)
    log = logging.getLogger("test.tls")
    for cls in ("SSLCertVerificationError", "TimeoutError"):
        watch.handle(
            log.makeRecord(
                "test.tls",
                logging.WARNING,
                __file__,
                1,
                "listener %s: TLS handshake with %s failed: %s",
                ("adt", "10.0.0.1:5000", cls),
                None,
            )
        )
    watch.handle(
        log.makeRecord(
            "eai.delivery",
            logging.WARNING,
            __file__,
            1,
            "delivery %d to %s failed (attempt %d): %s; next retry at %sZ (in %.1f s)",
            (7, "dmp", 1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed", "t", 1.0),
            None,
        )
    )
    assert signals.tls_rejections(60) == {"listener:adt": (1, 0.0), "destination:dmp": (1, 0.0)}
