"""The one error hierarchy of the engine, and the exit code each class maps to.

Touches: nothing.

    EaiError                   refused on purpose                               exit 1
    ├── ConfigError            routes.yaml or CLI input is wrong (file, line)   exit 1
    ├── ConfigNotFound         no routes.yaml where the command looked          exit 2
    ├── InputError             a message cannot be accepted (answered AR)       exit 1
    │   └── SenderNotAllowed   MSH-4 not on the listener's allow-list
    ├── NotFound               an id or name asked for does not exist           exit 3
    ├── Unavailable            the journal or the running engine cannot be used exit 4
    │   └── StoreError         the journal cannot be written (answered AE/CE)   exit 4
    └── DeliveryError
        ├── TransientDeliveryError   retried with backoff
        └── PermanentDeliveryError   dead-lettered

Every ``eai`` command exits with one of :data:`EXIT_CODES` (README, ``eai --help``):
click's usage errors exit 2 as click makes them, an :class:`EaiError` with its class's
code, and a check or test that finds a problem (``eai check``, ``eai identity check-ins``,
``eai mapping test``) with 1.

Foreign errors are wrapped at the edge with ``raise ... from``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from eai.messages import FollowUp

__all__ = [
    "EXIT_CODES",
    "ConfigError",
    "ConfigIssue",
    "ConfigNotFound",
    "DeliveryError",
    "EaiError",
    "ExitCode",
    "InputError",
    "NotFound",
    "PermanentDeliveryError",
    "SenderNotAllowed",
    "StoreError",
    "TransientDeliveryError",
    "Unavailable",
]


class ExitCode(IntEnum):
    """The exit codes of every ``eai`` command."""

    OK = 0
    PROBLEM = 1
    USAGE = 2
    NOT_FOUND = 3
    UNAVAILABLE = 4


EXIT_CODES: dict[ExitCode, str] = {
    ExitCode.OK: "ok",
    ExitCode.PROBLEM: "problem found: invalid routes.yaml, message refused, failed check or test",
    ExitCode.USAGE: "usage: unknown command or option, bad value, no routes.yaml found",
    ExitCode.NOT_FOUND: "not found: no message, delivery, destination... by that id or name",
    ExitCode.UNAVAILABLE: "unavailable: the journal cannot be opened, or no engine answers",
}
"""What each exit code means, in the order ``eai --help`` and the README list them."""


class EaiError(Exception):
    """Base of every error the engine raises on purpose."""

    exit_code: int = ExitCode.PROBLEM


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a configuration file, with its position (1-based)."""

    file: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


class ConfigError(EaiError):
    """The configuration is invalid; carries every issue found."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


class ConfigNotFound(EaiError):
    """No configuration file where the command looked: the message says where it
    looked and how to name one (``-c FILE``, ``$EAI_CONFIG``)."""

    exit_code = ExitCode.USAGE


class InputError(EaiError):
    """A message cannot be accepted: it is answered AR with an ERR segment.

    ``hl7_code`` is an HL7 table 0357 error code (e.g. 100 segment sequence
    error, 102 data type error, 203 unsupported version id, 207 application
    internal error).
    """

    def __init__(self, reason: str, hl7_code: str = "102", location: str = "") -> None:
        self.reason = reason
        self.hl7_code = hl7_code
        self.location = location
        super().__init__(reason)


class SenderNotAllowed(InputError):
    """The sending facility is not on the listener's allow-list."""


class Unavailable(EaiError):
    """The journal or the running engine cannot be used now (a database down or
    locked, no engine on the admin socket): trying again later may work."""

    exit_code = ExitCode.UNAVAILABLE


class StoreError(Unavailable):
    """The journal could not be written; the sender gets AE/CE, never AA."""


class NotFound(EaiError):
    """An id or name given on the command line does not exist."""

    exit_code = ExitCode.NOT_FOUND


class DeliveryError(EaiError):
    """A destination did not take a message.

    ``follow_ups`` (:class:`eai.messages.FollowUp`): what the engine must send when this
    failure is the delivery's final outcome (a ZAM with ``N`` back to the establishment):
    always for a :class:`PermanentDeliveryError`; for a :class:`TransientDeliveryError`
    only when the worker gives up on it (``retry.max_attempts`` reached). A destination
    may set them on an error it caught (``exc.follow_ups = ...``) before re-raising it."""

    def __init__(self, message: str, *, follow_ups: Iterable[FollowUp] = ()) -> None:
        super().__init__(message)
        self.follow_ups: tuple[FollowUp, ...] = tuple(follow_ups)


class TransientDeliveryError(DeliveryError):
    """Worth retrying later: timeout, refused connection, AE.

    ``retry_after``: the least delay, in seconds, the peer asked for before the next
    attempt (HTTP ``Retry-After``); the delivery worker waits at least that long."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        follow_ups: Iterable[FollowUp] = (),
    ) -> None:
        super().__init__(message, follow_ups=follow_ups)
        self.retry_after = retry_after


class PermanentDeliveryError(DeliveryError):
    """Retrying will not help: AR, message refused by the peer."""
