"""``eai dmp preview``: the XDS metadata a journaled message would publish to the DMP.

Touches: DB (reads the message, plans it through today's routes.yaml: nothing is written),
files (config), network (``--raw`` asks the running engine over its admin socket).

A plugin command (:class:`eai.registry.CommandSpec`, declared in
:data:`eai.plugins.COMMANDS`), imported only when it runs. The message is planned as
``eai replay --dry-run`` plans it; each delivery to a ``dmp`` destination is then built as
a send would build it (:mod:`connectors.dmp._preview`) and printed: no document content,
and the patient's traits only with ``--raw``, whose payload is read through the engine's
admin socket (the same audited read as ``eai messages show --raw``: the engine records
``raw_viewed``, naming the reader, before it answers).
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import click

from eai.cli import CONFIG_OPTION, emit_json, open_store, read_config

__all__ = ["dmp"]


@click.group()
def dmp() -> None:
    """DMP: preview what a message would publish."""


@dmp.command("preview")
@CONFIG_OPTION
@click.argument("message_id", type=int)
@click.option("--destination", help="only this dmp destination (default: each one it reaches)")
@click.option(
    "--raw",
    is_flag=True,
    help="show the patient's traits too: read through the running engine, which records "
    "who reads them",
)
@click.option("--reason", default="", help="with --raw: why you read it (kept in the record)")
@click.option("--json", "as_json", is_flag=True)
def preview_cmd(
    config_path: Path,
    message_id: int,
    destination: str | None,
    raw: bool,
    reason: str,
    as_json: bool,
) -> None:
    """The XDS metadata MESSAGE_ID would publish to each dmp destination under today's
    routes.yaml (classCode, typeCode, formatCode, patientId, author, confidentiality,
    uniqueId, hash, size...): nothing is sent or written. Exit 1 when no delivery to a dmp
    destination would be made, or one would be dead."""
    from connectors.dmp._preview import preview
    from connectors.dmp.config import DmpDestinationConfig
    from eai.content import media_type_of
    from eai.messages import NO_FACTS, MessageFacts, OutboxItem
    from eai.pipeline import plan_all
    from eai.store import messages_for_replay

    if reason and not raw:
        raise click.UsageError("--reason goes with --raw")
    config = read_config(config_path)
    targets = {
        d.name: d
        for d in config.destinations
        if isinstance(d, DmpDestinationConfig) and destination in (None, d.name)
    }
    if not targets:
        raise click.UsageError(
            f"{config_path} has no dmp destination"
            + (f" named {destination}" if destination else "")
        )
    as_received: bytes | None = None
    if raw:
        from eai.admin import request as admin_request

        answer = admin_request(
            config.engine.admin_socket_path(),
            {"op": "raw", "message_id": message_id, "reason": reason},
        )
        as_received = base64.b64decode(answer["payload"])
    store = open_store(config)
    try:
        (claimed,) = messages_for_replay(store.engine, [message_id])
        (plan,) = plan_all(config, store.cipher, [claimed])
        previews: list[dict[str, Any]] = []
        for planned in plan.deliveries:
            target = targets.get(planned.destination)
            if target is None:
                continue
            if planned.payload is not None:
                payload = store.cipher.open(planned.payload)
            elif plan.payload is not None:
                payload = store.cipher.open(plan.payload)
            else:
                payload = as_received or store.cipher.open(claimed.sealed_payload)
            facts = (
                MessageFacts.from_json(store.cipher.open(planned.facts))
                if planned.facts is not None
                else NO_FACTS
            )
            item = OutboxItem(
                0,
                message_id,
                planned.destination,
                payload,
                claimed.control_id,
                plan.patient_key,
                media_type=planned.media_type or media_type_of(claimed.content_type),
                route=planned.route,
                mapping=planned.mapping,
                facts=facts,
            )
            shown = {"message_id": message_id, "route": planned.route}
            if planned.held:
                shown["held"] = planned.held
            shown.update(preview(target, item, show_patient=raw))
            previews.append(shown)
    finally:
        store.engine.dispose()
    if as_json:
        emit_json(previews)
    else:
        if not previews:
            click.echo(
                f"message {message_id}: no delivery to a dmp destination under {config_path} "
                f"(planned: {plan.status}{', ' + plan.reason if plan.reason else ''})"
            )
        for shown in previews:
            _print(shown)
    if not previews or any("dead" in p for p in previews):
        raise SystemExit(1)


def _print(data: dict[str, Any], indent: int = 0) -> None:
    pad = "  " * indent
    for key, value in data.items():
        if isinstance(value, dict) and set(value) == {"code", "codingScheme", "displayName"}:
            click.echo(f"{pad}{key}: {_coded(value)}")
        elif isinstance(value, dict):
            click.echo(f"{pad}{key}:")
            _print(value, indent + 1)
        elif isinstance(value, list):
            click.echo(f"{pad}{key}:" + ("" if value else " (none)"))
            for element in value:
                text = _coded(element) if isinstance(element, dict) else str(element)
                click.echo(f"{pad}  - {text}")
        else:
            click.echo(f"{pad}{key}: {value}")


def _coded(value: dict[str, str]) -> str:
    display = f" ({value['displayName']})" if value.get("displayName") else ""
    return f"{value['code']}{display} [{value['codingScheme']}]"
