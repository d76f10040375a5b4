"""eai.net.Admission: allow-list, per-address cap, eviction order, log rate limit."""

from __future__ import annotations

import logging

import pytest

from eai.net import Admission, LogThrottle, address_allowed, parse_networks


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0  # every connection opens a second after the previous one
        return self.now


def admission(**kwargs: object) -> Admission[str]:
    fields: dict[str, object] = {
        "listener": "adt",
        "networks": (),
        "max_per_peer": 2,
        "capacity": 3,
        "clock": Clock(),
    }
    fields.update(kwargs)
    return Admission(**fields)  # type: ignore[arg-type]


def test_networks_parse_and_match_ipv4_mapped_ipv6() -> None:
    nets = parse_networks(["10.1.2.0/24", "192.168.40.17", "fd00::/8"])
    assert address_allowed(nets, "10.1.2.99") and address_allowed(nets, "::ffff:10.1.2.3")
    assert address_allowed(nets, "192.168.40.17") and address_allowed(nets, "fd12::1")
    assert not address_allowed(nets, "10.1.3.1") and not address_allowed(nets, "not-an-ip")
    assert address_allowed((), "203.0.113.9")  # no list: any address
    with pytest.raises(ValueError, match="'10.1.2.0/33' is not an IP address"):
        parse_networks(["10.1.2.0/33"])


def test_the_oldest_unknown_goes_first_and_known_ones_never() -> None:
    adm = admission()
    assert adm.admit("a", "10.0.0.1").evicted is None
    assert adm.admit("b", "10.0.0.2").evicted is None
    assert adm.admit("c", "10.0.0.3").evicted is None
    adm.mark_known("a")
    assert adm.admit("d", "10.0.0.4").evicted == "b"  # a is older but known
    assert adm.admit("e", "10.0.0.5", lambda conn: conn != "c").evicted == "d"  # c is busy
    adm.mark_known("c")
    adm.mark_known("e")
    decision = adm.admit("f", "10.0.0.6")
    assert not decision.admitted and decision.refused is not None
    assert adm.counts == {"evicted": 2, "refused_full": 1}
    adm.release("c")
    assert adm.admit("f", "10.0.0.6").admitted


def test_per_address_cap_and_release() -> None:
    adm = admission(capacity=10)
    assert adm.admit("a", "10.0.0.1").admitted and adm.admit("b", "10.0.0.1").admitted
    assert not adm.admit("c", "10.0.0.1").admitted
    assert adm.admit("d", "10.0.0.2").admitted
    adm.release("a")
    adm.release("a")  # idempotent
    assert adm.peers("10.0.0.1") == 1 and adm.admit("c", "10.0.0.1").admitted


def test_capacity_of_unknown_only() -> None:
    adm = admission(capacity=1, count_known=False, max_per_peer=10)
    adm.admit("a", "10.0.0.1")
    adm.mark_known("a")
    assert adm.admit("b", "10.0.0.1").evicted is None  # a, known, does not count
    assert adm.admit("c", "10.0.0.1").evicted == "b"


def test_refusals_are_warned_once_a_minute_per_address(caplog: pytest.LogCaptureFixture) -> None:
    adm = admission(networks=parse_networks(["10.0.0.0/8"]))
    with caplog.at_level(logging.DEBUG, logger="eai.net._admission"):
        for _ in range(5):
            assert not adm.admit("x", "192.0.2.7").admitted
        assert not adm.admit("y", "192.0.2.8").admitted
    levels = [(r.levelno, "192.0.2.8" in r.getMessage()) for r in caplog.records]
    assert levels == [(logging.WARNING, False)] + [(logging.DEBUG, False)] * 4 + [
        (logging.WARNING, True)
    ]
    assert "listener adt" in caplog.records[0].getMessage()
    assert adm.counts["refused_network"] == 6


def test_log_throttle_warns_once_per_period_per_key() -> None:
    now = [0.0]
    throttle = LogThrottle(every=60.0, remember=2, clock=lambda: now[0])
    assert throttle.level("a") == logging.WARNING
    assert throttle.level("a") == logging.DEBUG
    now[0] = 59.9
    assert throttle.level("a") == logging.DEBUG
    now[0] = 60.0
    assert throttle.level("a") == logging.WARNING
    assert throttle.level("b") == logging.WARNING
    assert throttle.level("b") == logging.DEBUG
    assert throttle.level("c") == logging.WARNING  # past ``remember`` keys: all forgotten
    assert throttle.level("b") == logging.WARNING  # so b is warned again within its minute


def test_refusals_go_to_the_listeners_logger(caplog: pytest.LogCaptureFixture) -> None:
    own = logging.getLogger("connectors.some_listener")
    adm = admission(networks=parse_networks(["10.0.0.0/8"]), logger=own)
    with caplog.at_level(logging.WARNING):
        assert not adm.admit("x", "192.0.2.7").admitted
    [record] = caplog.records
    assert record.name == "connectors.some_listener"
