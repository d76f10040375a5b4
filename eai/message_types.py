"""Message type patterns (``ADT^A01``, ``CDA^11502-2``) and the kinds of content they may name.

Touches: nothing (an unknown pattern imports the bundled plugins, which may register its kind).

A base module: :mod:`eai.config` (routes' ``message_type``) and :mod:`mappings` (rules'
``message_type``) both compile patterns here, so it imports nothing of theirs; it needs
only :mod:`eai.plugins` (which imports no eai module) to load the plugins' kinds when a
pattern names one not registered yet. HL7 v2 patterns are built in; another content type
registers its kind (:class:`MessageKindSpec`, through :func:`eai.registry.register_message_kind`):
``CDA`` (the core), ``DICOM`` (dicom_router).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "MessageKindSpec",
    "MessageTypeSet",
    "match_pattern",
    "message_kinds",
    "register_message_kind",
]


@dataclass(frozen=True)
class MessageKindSpec:
    """A kind of content whose message type is ``KIND^<trigger>`` (``CDA^11502-2``,
    DICOM ``DICOM^CT``), which routes' ``message_type`` patterns may name."""

    name: str
    """Upper case, 3 to 16 letters or digits (``CDA``, ``DICOM``)."""
    trigger: str
    """What the trigger is, for error messages (``document code``, ``modality``)."""
    example: str
    """A pattern (``DICOM^CT``)."""


_kinds: dict[str, MessageKindSpec] = {}


def register_message_kind(spec: MessageKindSpec) -> None:
    if spec.name in _kinds and _kinds[spec.name] != spec:
        raise ValueError(f"message kind {spec.name!r} registered twice")
    _kinds[spec.name] = spec


def message_kinds(*, load: bool = True) -> dict[str, MessageKindSpec]:
    """The registered message kinds; ``load=False``: without loading the plugins."""
    if load:
        from eai import plugins  # lazy: only a pattern of an unknown kind needs them

        plugins.load_builtin()
    return dict(_kinds)


# HL7 v2: a 3-character code and trigger. The engine's other content types register
# their kind and their own "trigger": CDA^<document code> (eai.config), DICOM^<Modality>
# (dicom_router).
_HL7_PATTERN = r"(?P<code>\*|[A-Z0-9]{3})(?:\^(?P<trigger>\*|[A-Z0-9]{3}))?"
_KIND_TRIGGER = r"(?:\^(?P<doctrigger>\*|[A-Za-z0-9][A-Za-z0-9._-]{0,31}))?"
_HL7_HELP = "use ADT^A01 (exact), ADT or ADT^* (any trigger), *^A01 (any message code)"


@functools.lru_cache(maxsize=8)
def _grammar(kinds: tuple[MessageKindSpec, ...]) -> tuple[re.Pattern[str], str]:
    """The message type pattern grammar for these kinds, and its help text."""
    names = "|".join(re.escape(kind.name) for kind in kinds)
    pattern = _HL7_PATTERN + (f"|(?P<doc>{names}){_KIND_TRIGGER}" if names else "")
    more = "".join(f", {kind.example} ({kind.trigger})" for kind in kinds)
    return re.compile(pattern), _HL7_HELP + more


def match_pattern(pattern: str) -> re.Match[str]:
    """``pattern`` parsed with the kinds registered (the plugins loaded when it needs them);
    ``ValueError`` naming the accepted forms when it is not a pattern."""
    for load in (False, True):
        grammar, help_text = _grammar(tuple(message_kinds(load=load).values()))
        match = grammar.fullmatch(pattern)
        if match is not None:
            return match
    raise ValueError(f"{pattern!r} is not a message type pattern: {help_text}")


@dataclass(frozen=True, slots=True)
class MessageTypeSet:
    """Compiled message type patterns; ``"ADT^A01" in types`` tests an MSH-9 value.

    The value tested is ``code^trigger`` (further components, such as the
    message structure, are ignored) or a bare ``code``.
    """

    exact: frozenset[tuple[str, str]]
    codes: frozenset[str]
    triggers: frozenset[str]
    everything: bool

    @classmethod
    def of(cls, patterns: Iterable[str]) -> MessageTypeSet:
        exact: set[tuple[str, str]] = set()
        codes: set[str] = set()
        triggers: set[str] = set()
        everything = False
        for pattern in patterns:
            # groupdict: with no kind registered yet, the grammar has no doc groups
            groups = match_pattern(pattern).groupdict()
            code: str = groups.get("code") or groups.get("doc") or "*"
            trigger: str = groups.get("trigger") or groups.get("doctrigger") or "*"
            if code == "*" and trigger == "*":
                everything = True
            elif trigger == "*":
                codes.add(code)
            elif code == "*":
                triggers.add(trigger)
            else:
                exact.add((code, trigger))
        return cls(frozenset(exact), frozenset(codes), frozenset(triggers), everything)

    def __contains__(self, message_type: object) -> bool:
        if self.everything:
            return True
        if not isinstance(message_type, str):
            return False
        code, _, rest = message_type.partition("^")
        trigger = rest.partition("^")[0]
        return (
            code in self.codes
            or (bool(trigger) and trigger in self.triggers)
            or (code, trigger) in self.exact
        )
