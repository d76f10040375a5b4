"""What DICOM adds to ``routes.yaml``'s routes: ``when`` keys, ``coerce:`` and its check.

Touches: nothing (importing it registers with :mod:`eai.registry`).

- ``message_type: [DICOM^CT]``: the kind ``DICOM``, whose trigger is the modality;
- ``when: {tag: Modality, in: [CT]}``: a DICOM element (keyword or ``(gggg,eeee)``)
  read with the content's ``get`` and tested like ``field``;
- ``when: {calling_ae: [CT_SCANNER_1]}``: the calling AE title, which the journal
  keeps as the sending application;
- ``coerce:`` on a route: marking operations (:class:`dicom_router.config.Coercion`)
  applied to the copy the route forwards; ``eai check`` refuses it on a route from
  a listener that is not ``dicom``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from dicom_router.config import Coercion, DicomTag
from eai.config import listed
from eai.registry import (
    CheckSpec,
    ConditionSpec,
    Loc,
    MessageKindSpec,
    Probe,
    RouteOptionSpec,
    register_check,
    register_condition,
    register_message_kind,
    register_route_option,
)
from eai.routing import Routable

__all__ = ["CALLING_AE", "COERCE", "COERCE_CHECK", "DICOM_KIND", "TAG", "coerce_problems"]

DICOM_KIND = MessageKindSpec("DICOM", "modality", "DICOM^CT")
"""``message_type: [DICOM^CT]``: an instance's message type is DICOM^<Modality>."""


def _tag(tag: str) -> Probe:
    def probe(message: Routable, facts: Mapping[str, str]) -> str:
        try:
            return message.get(tag)
        except ValueError:
            return ""  # a DICOM tag read on content of another type is absent, not an error

    return probe


def _calling_ae(titles: tuple[str, ...]) -> Probe:
    accepted = frozenset(titles)

    def probe(message: Routable, facts: Mapping[str, str]) -> bool:
        # the journal keeps the calling AE title as the sending application
        return message.header.sending_application in accepted

    return probe


TAG = ConditionSpec(
    key="tag",
    annotation=DicomTag,
    field=Field(
        default=None,
        description="DICOM element (keyword or (gggg,eeee)) tested by exactly one of in, "
        "equals, matches, exists; multi-valued elements read as values joined by a backslash",
        examples=["Modality", "InstitutionName", "StationName", "(0008,1030)"],
    ),
    compile=_tag,
    subject=True,
    summary="a DICOM element of the instance",
)
CALLING_AE = ConditionSpec(
    key="calling_ae",
    annotation=tuple[str, ...],
    field=Field(
        default=None,
        min_length=1,
        description="DICOM: accepted calling AE titles of the sender, any of which may match",
        examples=[["CT_SCANNER_1", "PACS_CHU_X"]],
    ),
    compile=_calling_ae,
    summary="the sender's calling AE title is one of these",
)
COERCE = RouteOptionSpec(
    key="coerce",
    annotation=tuple[Coercion, ...],
    field=Field(
        default=(),
        description=(
            "DICOM marking: operations applied, in order, to the copy this route forwards "
            "(the spooled original is kept as received), e.g. {set: InstitutionName, value: "
            "CHU-X}, {set: '(0009,0010)', vr: LO, value: EAI}, {remove: PatientComments}. "
            "Only on routes whose listeners are DICOM listeners"
        ),
    ),
    summary="DICOM marking of the forwarded copy",
)


def coerce_problems(data: Mapping[str, Any]) -> list[tuple[Loc, str]]:
    """``coerce:`` marks DICOM instances: only on routes whose listeners are all ``dicom``."""
    types = {
        item.get("name"): item.get("type")
        for item in listed(data.get("listeners"))
        if isinstance(item, Mapping)
    }
    problems: list[tuple[Loc, str]] = []
    for index, route in enumerate(listed(data.get("routes"))):
        if not isinstance(route, Mapping) or not route.get("coerce"):
            continue
        others = [
            n
            for n in listed(route.get("from"))
            if isinstance(n, str) and n in types and types[n] != "dicom"
        ]
        if others:
            message = (
                f"coerce marks DICOM instances; listener {others[0]!r} is {types[others[0]]!r}"
            )
            problems.append((("routes", index, "coerce"), message))
    return problems


COERCE_CHECK = CheckSpec(
    name="dicom-coerce",
    run=coerce_problems,
    summary="coerce only on routes from dicom listeners",
)

register_message_kind(DICOM_KIND)
register_condition(TAG)
register_condition(CALLING_AE)
register_route_option(COERCE)
register_check(COERCE_CHECK)
