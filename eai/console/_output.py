"""The console's view of what a delivery handed its destination: the FHIR Bundle a mapping
produced, the XDS metadata of a DMP publication, or the message as transformed.

Touches: DB (through :func:`eai.store.read_delivery`, which records the read in the
audit trail before anything is decrypted).

Patient data: for the operator role and above, on an explicit action with a reason,
exactly as the raw payload (``/messages/ID/raw``). The metadata is the destination's
own preview (:attr:`eai.registry.DestinationSpec.preview`: ``eai dmp preview``'s), so
the console shows what a send builds, not a copy of it.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from eai.config import Config
from eai.console._auth import Session
from eai.console._web import Ctx, page, read_recorded, render
from eai.errors import EaiError
from eai.messages import MEDIA_FHIR_JSON, OutboxItem
from eai.registry import destinations
from eai.store import read_delivery

__all__ = ["metadata_of"]


def metadata_of(config: Config, item: OutboxItem) -> dict[str, Any] | None:
    """The destination's preview of ``item`` (None when its payload is all it sends, or
    the destination is no longer in routes.yaml)."""
    dest = next((d for d in config.destinations if d.name == item.destination), None)
    spec = destinations().get(dest.type) if dest is not None else None
    if dest is None or spec is None or spec.preview is None:
        return None
    try:
        return dict(spec.preview(dest, item))
    except EaiError as exc:
        return {"dead": str(exc)}


def _text(item: OutboxItem) -> str:
    if item.media_type == MEDIA_FHIR_JSON:
        try:
            return json.dumps(json.loads(item.payload), ensure_ascii=False, indent=2)
        except ValueError:
            pass
    return item.payload.decode("utf-8", "replace").replace("\r", "\n")


@page("/deliveries/{delivery_id:int}/output", "operator", ("POST",))
async def output_page(request: Request, ctx: Ctx, session: Session) -> Response:
    delivery_id = int(request.path_params["delivery_id"])
    got = await read_recorded(request, ctx, session, read_delivery, delivery_id, "delivery")
    if isinstance(got, Response):
        return got
    item, reason = got
    metadata = metadata_of(ctx.config(), item)
    return render(
        request,
        "output.html",
        session,
        item=item,
        reason=reason,
        bundle=item.media_type == MEDIA_FHIR_JSON,
        metadata=None if metadata is None else json.dumps(metadata, ensure_ascii=False, indent=2),
        text=_text(item) if metadata is None else "",
    )
