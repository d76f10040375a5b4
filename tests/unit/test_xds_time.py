"""eai.xds.xds_time reads the TS digits by position instead of datetime.strptime (whose
locale look-ups were most of its cost): the same DTM, or the same error, as strptime with
the same format gave, for valid and impossible dates alike."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

from eai.xds import xds_time
from eai.xds._header import _TIME


def by_strptime(value: str) -> str:
    match = _TIME.match(value.strip())
    if not match:
        raise ValueError("not an HL7 TS")
    digits, sign, hours, minutes = match.groups()
    if sign is None or len(digits) < 12:
        return digits[:14]
    fmt = "%Y%m%d%H%M%S"[: {12: 10, 14: 12}[len(digits)]]
    offset = timedelta(hours=int(hours), minutes=int(minutes))
    zone = timezone(-offset if sign == "-" else offset)
    local = datetime.strptime(digits, fmt).replace(tzinfo=zone)
    return local.astimezone(UTC).strftime(fmt)


def outcome(convert: object, value: str) -> str:
    try:
        return str(convert(value))  # type: ignore[operator]
    except (ValueError, KeyError, OverflowError) as exc:
        return type(exc).__name__


def test_the_same_as_strptime() -> None:
    values = [
        "20210104160527+0100",
        "202101041605+0100",
        "20211231235959-1200",
        "20240229120000+0000",
        "20230229120000+0000",
        "20211301000000+0100",
        "20210100000000+0100",
        "20210101240000+0100",
        "20210101236000+0100",
        "20210101235960+0100",
        "2021010123595+0100",
        "00010101000000+0100",
        "20210104160527.123+0100",
        "20210104160527",
        "2021",
        "not a date",
    ]
    draw = random.Random(18)
    for _ in range(5000):
        digits = "".join(draw.choice("0123456789") for _ in range(draw.choice((12, 13, 14))))
        values.append(digits + draw.choice(("+0100", "-0530", "+1400", "+0000")))
    for value in values:
        assert outcome(xds_time, value) == outcome(by_strptime, value), value
    assert xds_time("20210104160527+0100") == "20210104150527"
