"""The registry: everything a plugin (connector) contributes to the core.

Touches: nothing. Over 400 lines on purpose: each kind of contribution is a spec
and a register/lookup pair, all in one module so that a plugin author reads one
place (split, the one idea "what a plugin may add" would be scattered).

A connector module registers itself on import; the config
loader builds the ``routes.yaml`` model (a discriminated union on ``type``)
from what is registered, and the engine builds instances with the factory.
Adding a destination is one module that calls :func:`register_destination`,
plus its tests: no edit to the core. A connector that needs housekeeping (the
DICOM spool's retention) registers a :class:`PeriodicSpec`; the engine runs it
on its scheduler with a :class:`JournalView`, the only journal reads it gets.

Beyond listeners and destinations, a plugin adds ``when:`` keys to routes
(:class:`ConditionSpec`: DICOM ``tag``, ``calling_ae``), keys to every route
(:class:`RouteOptionSpec`: DICOM ``coerce``), ``eai check`` cross-checks on the
whole file reported at ``FILE:LINE:COL`` (:class:`CheckSpec`: "coerce only from
dicom listeners", a listener type's exposure rule), listing fields
(:class:`ListingSpec`) and ``eai`` subcommands (:class:`CommandSpec`). The core's
own ``when:`` keys are registered the same way (``eai.config``). Kinds of content
named by ``message_type`` patterns (:class:`MessageKindSpec`) are kept by
:mod:`eai.message_types` (which :mod:`mappings` uses too), re-exported here.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, runtime_checkable

from eai import plugins
from eai.message_types import MessageKindSpec, message_kinds, register_message_kind
from eai.messages import DeliveryResult, FollowUp, IngestResult, JournalEntry, OutboxItem

if TYPE_CHECKING:
    import click
    from pydantic import BaseModel

    from eai.config import Config, DestinationConfig, ListenerConfig
    from eai.ingest_report import IngestReport
    from eai.routing import Routable

__all__ = [
    "AttemptsAware",
    "AttemptsReader",
    "MessageKindSpec",
    "message_kinds",
    "register_message_kind",
    "CheckSpec",
    "CommandSpec",
    "ConditionSpec",
    "Loc",
    "Probe",
    "RouteOptionSpec",
    "checks",
    "commands",
    "conditions",
    "register_check",
    "register_command",
    "register_condition",
    "register_route_option",
    "route_options",
    "Destination",
    "DestinationSpec",
    "Ingest",
    "JournalHost",
    "ThreadIngest",
    "ReceiptJournal",
    "JournalView",
    "Listener",
    "ListenerSpec",
    "ListingSpec",
    "PeriodicSpec",
    "destinations",
    "listeners",
    "listing_specs",
    "load_builtin_connectors",
    "periodic_jobs",
    "register_destination",
    "register_listener",
    "register_listing",
    "register_periodic",
]

Ingest = Callable[[JournalEntry], Awaitable[IngestResult]]
"""Journals an entry durably and returns only after the commit.

Raises :class:`eai.errors.StoreError` when the journal cannot be written.
"""


@runtime_checkable
class ThreadIngest(Protocol):
    """The engine's :data:`Ingest`, which a listener serving on its own threads (DICOM)
    may also call there, without a hop through the event loop."""

    async def __call__(self, entry: JournalEntry) -> IngestResult: ...

    def blocking(
        self,
        entry: JournalEntry,
        timeout: float,
        before_commit: Callable[[], object] | None = None,
    ) -> IngestResult:
        """Journals ``entry``; returns after the commit. Raises StoreError, or TimeoutError
        when no commit came within ``timeout`` s (the entry may still be committed).

        ``before_commit`` is called on the writer's thread once the entry's rows are
        written and before they are committed (a DICOM listener waits there for its
        spool file's fsync); an exception from it fails the entry (StoreError as is,
        anything else wrapped in one) and nothing of it is committed."""
        ...


@runtime_checkable
class ReceiptJournal(Protocol):
    """The engine's :data:`Ingest`, as a listener that reads receipts for deliveries
    already made (the MSSanté receipts reader: DSN / MDN mails) also uses it."""

    async def __call__(self, entry: JournalEntry) -> IngestResult: ...

    async def delivery_record(self, delivery_id: int) -> tuple[OutboxItem, tuple[str, ...], bool]:
        """The delivery as its destination was handed it, the details of its ``attempt``
        events, and whether its outcome is final (delivered or dead: no attempt will add
        to what it recorded). Raises :class:`eai.errors.NotFound`."""
        ...

    async def record_receipt(
        self, delivery_id: int, key: str, detail: str, follow_ups: Sequence[FollowUp]
    ) -> bool:
        """Journals receipt ``key`` (a ``receipt`` event, ``detail`` without patient data)
        on the delivery's message with its follow-ups, in one transaction; False when
        that receipt was already recorded (nothing added). Raises NotFound, StoreError."""
        ...


@runtime_checkable
class JournalHost(Protocol):
    """The engine's :data:`Ingest`, as a listener serving in a process of its own uses it
    (an MLLP listener with ``own_process``): that process opens the journal itself
    (:meth:`journal_access`), journals and answers there, and reports what it journaled
    (:meth:`journaled_elsewhere`) for the engine's meters, alerts and pipeline."""

    async def __call__(self, entry: JournalEntry) -> IngestResult: ...

    def journal_access(self) -> object:
        """The running journal, for :meth:`eai.store.Store.attach` in another process (an
        :class:`eai.store.JournalAccess`; opaque here: the registry sits below the store)."""
        ...

    def journaled_elsewhere(self, listener: str, report: IngestReport) -> None:
        """Counts ``report`` in listener ``listener``'s meters, signals its journal
        failures, and wakes the pipeline when it holds new messages (on the loop)."""
        ...


AttemptsReader = Callable[[int], Awaitable[tuple[str, ...]]]
"""Reads the details of a delivery's recorded ``attempt`` events, oldest first (a read of
the journal, off the event loop). Raises :class:`eai.errors.NotFound`, StoreError."""


@runtime_checkable
class AttemptsAware(Protocol):
    """A destination that reads back what its earlier attempts of a delivery recorded (a
    retry after a restart, or on another node, sends only what was not accepted: the
    MSSanté destination's mails). The delivery worker gives it the reader before
    ``start``."""

    def read_attempts_with(self, reader: AttemptsReader) -> None: ...


class Listener(Protocol):
    """A running inbound endpoint."""

    async def start(self) -> None:
        """Bind and start accepting (returns once bound)."""

    async def stop(self, grace: float) -> None:
        """Stop accepting, let in-flight messages finish within ``grace`` s."""


class Destination(Protocol):
    """An outbound endpoint. ``send`` returns on success, raises
    :class:`eai.errors.TransientDeliveryError` (retry) or
    :class:`eai.errors.PermanentDeliveryError` (dead letter)."""

    async def start(self) -> None:
        """Called once by the delivery worker before its first send: prepare what can be
        prepared ahead (a helper process, a pool). Must not fail because the peer is down."""
        ...

    async def send(self, item: OutboxItem) -> DeliveryResult: ...

    async def close(self) -> None: ...


LC = TypeVar("LC", bound="BaseModel")  # pydantic named for the type checker only: the
DC = TypeVar("DC", bound="BaseModel")  # journal's readers import the registry, not pydantic


@dataclass(frozen=True)
class ListenerSpec(Generic[LC]):
    type_name: str
    config_model: type[LC]
    factory: Callable[[LC, Ingest], Listener]
    summary: str
    produces: tuple[str, ...] = ()
    """Media types (``eai.messages.MEDIA_*``) of what it journals, for ``eai check``'s
    route-to-destination check; () = not declared (not checked)."""


@dataclass(frozen=True)
class DestinationSpec(Generic[DC]):
    type_name: str
    config_model: type[DC]
    factory: Callable[[DC], Destination]
    summary: str
    accepts: tuple[str, ...] = ()
    """Media types (``eai.messages.MEDIA_*``) it can deliver; ``eai check`` refuses a
    route that would hand it another. () = not declared (anything)."""
    reads_facts: bool = True
    """Whether its ``send`` reads ``OutboxItem.facts`` (CI-SIS flags, recipients, the
    qualified INS). False (MLLP, DICOM: the payload is all they send): the pipeline seals
    no facts into its outbox rows, and its items carry empty facts."""
    preview: Callable[[DC, OutboxItem], Mapping[str, Any]] | None = None
    """What a send of the item builds besides its payload, as JSON-ready data (the DMP's
    XDS metadata): the console's view of a delivery. Called only once the read of the
    item is recorded in the audit trail (it may show patient traits). None: the payload
    itself is what is sent."""


class JournalView(Protocol):
    """The journal as a periodic job sees it: narrow, read-only."""

    async def settled(self, dedup_keys: Sequence[str], before: datetime) -> Mapping[str, bool]:
        """For each key journaled: True when its message was settled before ``before``
        (filtered, or processed with every delivery delivered), else False. Keys of
        no message are absent."""
        ...


@dataclass(frozen=True)
class PeriodicSpec:
    """A housekeeping job the engine runs every ``interval`` seconds (one at a time)."""

    name: str
    interval: float
    run: Callable[[Config, JournalView], Awaitable[None]]
    summary: str


@dataclass(frozen=True)
class ListingSpec:
    """What the messages of one content type add to ``eai messages list|show``: fields
    read from their payload (e.g. DICOM: Study, Series and SOP Instance UIDs)."""

    content_type: str
    fields: tuple[str, ...]
    """JSON keys, in order; every listed message carries them (null: unknown, or a message
    of another content type). Never patient data: listing them records no access."""
    read: Callable[[bytes], Mapping[str, str | None]]
    """The payload in clear -> values of some of ``fields``; raises ValueError when it
    cannot read it (the row's fields are then null: a listing never fails on one row)."""
    line: Callable[[Mapping[str, Any]], str]
    """The text listing's extra line for such a message, from its fields."""


_listeners: dict[str, ListenerSpec[Any]] = {}
_destinations: dict[str, DestinationSpec[Any]] = {}
_periodic: dict[str, PeriodicSpec] = {}
_listings: dict[str, ListingSpec] = {}


def register_listener(spec: ListenerSpec[Any]) -> None:
    if spec.type_name in _listeners and _listeners[spec.type_name] is not spec:
        raise ValueError(f"listener type {spec.type_name!r} registered twice")
    _listeners[spec.type_name] = spec


def register_destination(spec: DestinationSpec[Any]) -> None:
    if spec.type_name in _destinations and _destinations[spec.type_name] is not spec:
        raise ValueError(f"destination type {spec.type_name!r} registered twice")
    _destinations[spec.type_name] = spec


def register_periodic(spec: PeriodicSpec) -> None:
    if spec.name in _periodic and _periodic[spec.name] is not spec:
        raise ValueError(f"periodic job {spec.name!r} registered twice")
    _periodic[spec.name] = spec


def register_listing(spec: ListingSpec) -> None:
    if spec.content_type in _listings and _listings[spec.content_type] is not spec:
        raise ValueError(f"listing fields of {spec.content_type!r} registered twice")
    _listings[spec.content_type] = spec


def listing_specs() -> dict[str, ListingSpec]:
    """The listing fields per content type (:class:`ListingSpec`).

    Until the bundled plugins are loaded, those of :data:`eai.plugins.LISTINGS` stand in:
    their keys are known, and reading a payload (or a line) of their content type loads
    the plugins. So ``eai messages list`` over HL7 v2 and CDA messages imports no plugin."""
    if plugins.loaded():
        return dict(_listings)
    declared = {
        content_type: ListingSpec(
            content_type,
            fields,
            functools.partial(_loaded_listing_read, content_type),
            functools.partial(_loaded_listing_line, content_type),
        )
        for content_type, fields in plugins.LISTINGS
    }
    return {**declared, **_listings}


def _loaded_listing_read(content_type: str, payload: bytes) -> Mapping[str, str | None]:
    load_builtin_connectors()
    return _listings[content_type].read(payload)


def _loaded_listing_line(content_type: str, fields: Mapping[str, Any]) -> str:
    load_builtin_connectors()
    return _listings[content_type].line(fields)


def periodic_jobs() -> dict[str, PeriodicSpec]:
    load_builtin_connectors()
    return dict(_periodic)


def listeners() -> dict[str, ListenerSpec[Any]]:
    load_builtin_connectors()
    return dict(_listeners)


def destinations() -> dict[str, DestinationSpec[Any]]:
    load_builtin_connectors()
    return dict(_destinations)


Probe = Callable[["Routable", Mapping[str, str]], Any]
"""A compiled route condition: reads a message (and its routing facts) and returns what
its :class:`ConditionSpec` says: the value tested (a subject) or whether it holds."""

Loc = tuple[str | int, ...]
"""A place in ``routes.yaml`` as keys and indexes (``("routes", 0, "coerce")``)."""


@dataclass(frozen=True, eq=False)
class ConditionSpec:
    """A key of a route's ``when:`` (``message_type``, ``fact``; DICOM ``tag``...).

    ``annotation`` and ``field`` (a ``pydantic.Field(default=None, ...)``) type its value
    in ``routes.yaml`` (checked when the file is loaded); ``compile`` turns a loaded value
    into a :data:`Probe`, once per condition. A ``subject`` probe returns the string the
    condition's one comparator (``in``, ``equals``, ``matches``, ``exists``) tests, and
    two subjects cannot share a condition; any other probe returns True when it holds.
    """

    key: str
    annotation: Any
    field: Any
    compile: Callable[[Any], Probe]
    summary: str
    subject: bool = False
    reads_facts: bool = False
    """True when the probe reads the routing facts (see ``eai.routing.reads_facts``)."""


@dataclass(frozen=True, eq=False)
class RouteOptionSpec:
    """A key a connector adds to every route (DICOM ``coerce:``); typed like a
    :class:`ConditionSpec`, read by the connector with ``getattr(route, key)``."""

    key: str
    annotation: Any
    field: Any
    summary: str


@dataclass(frozen=True)
class CheckSpec:
    """A cross-check ``eai check`` runs on the whole file (plain data, before typing, so
    it runs even when another part is invalid); each problem is reported at its
    :data:`Loc` as ``FILE:LINE:COL: path: message``. ``run`` must skip malformed
    entries (validation reports them) and never raise."""

    name: str
    run: Callable[[Mapping[str, Any]], Iterable[tuple[Loc, str]]]
    summary: str


@dataclass(frozen=True)
class CommandSpec:
    """A ``click`` command or group a plugin adds to the ``eai`` command line: ``load``
    is called when it runs; ``summary`` is its line in ``eai --help`` (which loads nothing).
    A bundled plugin declares its commands in :data:`eai.plugins.COMMANDS`, so that
    listing them imports no plugin; another registers with :func:`register_command`."""

    name: str
    load: Callable[[], click.Command]
    summary: str


_conditions: dict[str, ConditionSpec] = {}
_route_options: dict[str, RouteOptionSpec] = {}
_checks: dict[str, CheckSpec] = {}
_commands: dict[str, CommandSpec] = {}


def register_condition(spec: ConditionSpec) -> None:
    taken = _conditions.get(spec.key) or _route_options.get(spec.key)
    if taken is not None and taken is not spec:
        raise ValueError(f"route condition {spec.key!r} registered twice")
    _conditions[spec.key] = spec


def register_route_option(spec: RouteOptionSpec) -> None:
    if spec.key in _route_options and _route_options[spec.key] is not spec:
        raise ValueError(f"route option {spec.key!r} registered twice")
    _route_options[spec.key] = spec


def register_check(spec: CheckSpec) -> None:
    if spec.name in _checks and _checks[spec.name] is not spec:
        raise ValueError(f"config check {spec.name!r} registered twice")
    _checks[spec.name] = spec


def register_command(spec: CommandSpec) -> None:
    if spec.name in _commands and _commands[spec.name] is not spec:
        raise ValueError(f"command {spec.name!r} registered twice")
    _commands[spec.name] = spec


def conditions() -> dict[str, ConditionSpec]:
    """Every ``when:`` key, core ones first (in registration order)."""
    load_builtin_connectors()
    return dict(_conditions)


def route_options() -> dict[str, RouteOptionSpec]:
    load_builtin_connectors()
    return dict(_route_options)


def checks() -> dict[str, CheckSpec]:
    load_builtin_connectors()
    return dict(_checks)


def commands() -> dict[str, CommandSpec]:
    """The plugins' commands: those of :data:`eai.plugins.COMMANDS` and those registered
    by plugins imported so far (plugins are not loaded for this: ``eai --help`` stays fast)."""
    declared = {
        name: CommandSpec(name, functools.partial(_command_at, target), summary)
        for name, target, summary in plugins.COMMANDS
    }
    return {**declared, **_commands}


def _command_at(target: str) -> click.Command:
    """``"package.module:attribute"`` imported."""
    module, _, attribute = target.partition(":")
    command: click.Command = getattr(importlib.import_module(module), attribute)
    return command


def load_builtin_connectors() -> None:
    """Import the bundled plugins (:data:`eai.plugins.BUILTIN`) so that each registers."""
    plugins.load_builtin()


def build_listener(config: ListenerConfig, ingest: Ingest) -> Listener:
    spec = listeners()[config.type]
    return spec.factory(config, ingest)


def build_destination(config: DestinationConfig) -> Destination:
    spec = destinations()[config.type]
    return spec.factory(config)
