"""The one error hierarchy of the engine, and the exit code each class maps to.

Touches: nothing.

    EaiError
    ├── ConfigError            routes.yaml or CLI input is wrong (file, line)   exit 1
    ├── InputError             a message cannot be accepted (answered AR)       exit 1
    │   └── SenderNotAllowed   MSH-4 not on the listener's allow-list
    ├── StoreError             the journal cannot be written (answered AE/CE)   exit 3
    ├── NotFound               an id asked for does not exist                   exit 4
    └── DeliveryError
        ├── TransientDeliveryError   retried with backoff
        └── PermanentDeliveryError   dead-lettered

Foreign errors are wrapped at the edge with ``raise ... from``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ConfigError",
    "ConfigIssue",
    "DeliveryError",
    "EaiError",
    "InputError",
    "NotFound",
    "PermanentDeliveryError",
    "SenderNotAllowed",
    "StoreError",
    "TransientDeliveryError",
]


class EaiError(Exception):
    """Base of every error the engine raises on purpose."""

    exit_code = 1


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


class StoreError(EaiError):
    """The journal could not be written; the sender gets AE/CE, never AA."""

    exit_code = 3


class NotFound(EaiError):
    """An id given on the command line does not exist."""

    exit_code = 4


class DeliveryError(EaiError):
    """A destination did not take a message."""


class TransientDeliveryError(DeliveryError):
    """Worth retrying later: timeout, refused connection, AE.

    ``retry_after``: the least delay, in seconds, the peer asked for before the next
    attempt (HTTP ``Retry-After``); the delivery worker waits at least that long."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentDeliveryError(DeliveryError):
    """Retrying will not help: AR, message refused by the peer."""
