"""The whole ``routes.yaml`` model, built from the connector registry, and its cross checks.

Touches: nothing.

:class:`Config` is the static shape (listeners typed as their common base);
:func:`config_model` subclasses it with ``listeners`` and ``destinations`` as
discriminated unions (on ``type``) of the registered connector models, and
``routes`` with the registered route keys and ``when`` conditions
(:func:`route_model`), so a new connector is one registration and no
edit here. The registered cross-checks run with the core ones (:func:`cross_check`).
"""

from __future__ import annotations

import difflib
import functools
import operator
from collections.abc import Mapping
from typing import Annotated, Any, Self

from pydantic import BaseModel, BeforeValidator, Field, create_model, model_validator
from pydantic_core import PydanticCustomError

from eai import registry
from eai.config._alerts import AlertsConfig
from eai.config._audit import AuditConfig
from eai.config._base import DestinationConfig, ListenerConfig, Model
from eai.config._business_acks import business_ack_problems
from eai.config._console import ConsoleConfig
from eai.config._engine import EngineConfig
from eai.config._identity import IdentityConfig
from eai.config._media import media_problems
from eai.config._metrics import MetricsConfig
from eai.config._raw import listed
from eai.config._routes import Route, When, route_model_for, when_model_for
from eai.config._yaml import Loc, format_path

__all__ = ["Config", "config_model", "cross_check", "route_model", "when_model"]

_LISTENERS = "the inbound endpoints (one entry per listening socket, directory, ...)"
_DESTINATIONS = "the outbound endpoints messages are delivered to"


class Config(Model):
    """A loaded ``routes.yaml``. Build it with ``eai.config.load_config``: the
    model returned is :func:`config_model`, whose listeners and destinations
    are the registered connector models."""

    engine: EngineConfig = Field(
        default_factory=EngineConfig, description="process-wide settings (all defaulted)"
    )
    listeners: tuple[ListenerConfig, ...] = Field(default=(), description=_LISTENERS)
    destinations: tuple[DestinationConfig, ...] = Field(default=(), description=_DESTINATIONS)
    routes: tuple[Route, ...] = Field(
        default=(),
        description="which messages go where; a message no route takes is kept as filtered",
    )  # config_model(): with the plugins' route keys and when conditions
    identity: IdentityConfig = Field(
        default_factory=lambda: IdentityConfig(),
        description="identity checks: regional charter, establishment contacts, anomaly mails",
    )
    alerts: AlertsConfig | None = Field(
        default=None,
        description="technical alerts mailed to the establishments and the regional team "
        "(docs/supervision.md); unset: only the identity server's outages (alert_to)",
    )
    metrics: MetricsConfig | None = Field(
        default=None,
        description="the supervision endpoint: /metrics, /livez, /readyz (absent: not served)",
    )
    audit: AuditConfig = Field(
        default_factory=lambda: AuditConfig(),
        description="the audit trail: retention and forwarding to the region's SIEM",
    )
    console: ConsoleConfig | None = Field(
        default=None,
        description="the web console (docs/console.md); absent: not served",
    )

    @model_validator(mode="after")
    def _references(self) -> Self:
        problems = cross_check(self.model_dump(by_alias=True, include=_NAMED))
        if problems:
            text = "; ".join(f"{format_path(loc)}: {message}" for loc, message in problems)
            raise PydanticCustomError("config_reference", "{problems}", {"problems": text})
        return self


_NAMED: Any = {"listeners": True, "destinations": True, "routes": True}


def cross_check(data: Mapping[str, Any]) -> list[tuple[Loc, str]]:
    """Checks across sections, on plain data (raw YAML or a dumped model).

    Duplicate listener, destination and route names; route ``from``/``to``
    entries naming no listener/destination; then the checks plugins registered
    (:func:`eai.registry.register_check`: network listeners open to anyone,
    :mod:`eai.config._exposure`; DICOM ``coerce`` on other listeners...). Malformed
    entries are skipped: validation reports them.
    """
    problems: list[tuple[Loc, str]] = []
    known: dict[str, dict[str, int]] = {}
    for section, kind in (("listeners", "listener"), ("destinations", "destination")):
        known[kind] = _names(data, section, kind, problems)
    _names(data, "routes", "route", problems)
    for index, route in enumerate(listed(data.get("routes"))):
        if not isinstance(route, Mapping):
            continue
        for key, kind in (("from", "listener"), ("to", "destination")):
            for position, name in enumerate(listed(route.get(key))):
                if isinstance(name, str) and name not in known[kind]:
                    hint = difflib.get_close_matches(name, list(known[kind]), n=1)
                    more = f" (did you mean {hint[0]!r}?)" if hint else ""
                    problems.append(
                        (("routes", index, key, position), f"unknown {kind} {name!r}{more}")
                    )
    problems.extend(media_problems(data))
    problems.extend(business_ack_problems(data))
    for check in registry.checks().values():
        problems.extend(_run_check(check, data))
    return problems


def _run_check(check: registry.CheckSpec, data: Mapping[str, Any]) -> list[tuple[Loc, str]]:
    """A plugin's check; one that fails is a finding naming it, never a crash of ``eai check``."""
    try:
        return list(check.run(data))
    except Exception as exc:  # noqa: BLE001 - a plugin's bug must not hide the other findings
        return [((), f"the {check.name!r} check failed: {type(exc).__name__}: {exc}")]


def _names(
    data: Mapping[str, Any], section: str, kind: str, problems: list[tuple[Loc, str]]
) -> dict[str, int]:
    """The names in ``section`` (first index of each); duplicates go to ``problems``."""
    first: dict[str, int] = {}
    for index, item in enumerate(listed(data.get(section))):
        name = item.get("name") if isinstance(item, Mapping) else None
        if not isinstance(name, str):
            continue
        if name in first:
            problems.append(
                (
                    (section, index, "name"),
                    f"duplicate {kind} name {name!r} (also {section}[{first[name]}])",
                )
            )
        else:
            first[name] = index
    return first


def config_model() -> type[Config]:
    """The ``routes.yaml`` model for the connectors registered now (cached)."""
    listener_models = tuple(spec.config_model for spec in registry.listeners().values())
    destination_models = tuple(spec.config_model for spec in registry.destinations().values())
    return _build(listener_models, destination_models, route_model())


def route_model() -> type[Route]:
    """:class:`Route` with the registered route keys and ``when`` conditions (cached)."""
    conditions = tuple(registry.conditions().values())
    return route_model_for(conditions, tuple(registry.route_options().values()))


def when_model() -> type[When]:
    """:class:`When` with the registered conditions (cached)."""
    return when_model_for(tuple(registry.conditions().values()))


_tuple: Any = tuple  # subscripted with types known only at run time


@functools.lru_cache(maxsize=16)
def _build(
    listener_models: tuple[type[BaseModel], ...],
    destination_models: tuple[type[BaseModel], ...],
    route: type[Route],
) -> type[Config]:
    listeners = _tagged_union(listener_models, ListenerConfig, "listener")
    destinations = _tagged_union(destination_models, DestinationConfig, "destination")
    return create_model(
        "Config",
        __base__=Config,
        __module__=__name__,
        listeners=(_tuple[listeners, ...], Field(default=(), description=_LISTENERS)),
        destinations=(_tuple[destinations, ...], Field(default=(), description=_DESTINATIONS)),
        routes=(_tuple[route, ...], Config.model_fields["routes"]),
    )


def _tagged_union(models: tuple[type[BaseModel], ...], base: type[BaseModel], kind: str) -> Any:
    for model in models:
        if not issubclass(model, base):
            raise TypeError(f"{model.__qualname__} must subclass eai.config.{base.__name__}")
    if not models:
        return Annotated[Any, BeforeValidator(functools.partial(_none_registered, kind))]
    union = functools.reduce(operator.or_, models)
    return Annotated[union, Field(discriminator="type")]


def _none_registered(kind: str, value: Any) -> Any:
    raise ValueError(f"no {kind} type is registered (is the connectors package importable?)")
