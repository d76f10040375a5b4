"""Map a CI-SIS ORU^R01 / MDM^T02/T04/T10/T11 carrying a CDA: the ``cisis`` source kind unpacks and
maps the document; these rules copy its resources and mark the requested action.

Touches: nothing.

The ``cisis`` source kind (:mod:`mappings.functions.cisis_source`) does the
unpacking: the CDA is the first OBX ED holding XML in base64
(:func:`eai.hl7.embedded_documents`), parsed with the hardened settings and
mapped by the CDA mapping a route would choose (``crbio`` for 11502-2, else
``cda-document``). Its ``for_each: "entry:<Type>"`` visits the resources of
that inner Bundle; ``cisis-oru-mdm.yaml`` declares one resource per type.

Rules:

- ``cisis_copy``: the resource becomes a copy of the inner one (the current
  ``for_each`` item), references re-pointed at this Bundle's ``urn:uuid``s;
  an inner resource type the mapping does not declare is an error;
- ``cisis_action`` (on the DocumentReference), after CI-SIS *transmission de
  documents CDA en HL7v2*, volume 2 (MDM trigger T02/T10/T04, ORC-1
  NW/RO/CA, OBX-11 F/C/D): ``meta.tag`` ``urn:eai:document-action#new|replace|delete``;
  a replacement gets ``relatesTo`` ``replaces`` from TXA-13 (parent document
  number) when the CDA's own ``relatedDocument`` did not give it; a deletion
  request gets ``status`` ``entered-in-error`` (the document is withdrawn);
  the DMP masking flags ``MASQUE_PS``, ``INVISIBLE_PATIENT``,
  ``INVISIBLE_REP_LEGAUX`` set to Y become ``securityLabel`` codes of the DMP
  confidentiality code system (1.2.250.1.213.1.1.4.13, where the last one is
  ``INVISIBLE_REPRESENTANTS_LEGAUX``);
- ``cisis_attachment`` (on the DocumentReference of a message without a CDA,
  ``for_each: "document:not-cda"``): ``content[0].attachment`` gets the type
  (``text/plain``, or as the OBX gives it), ``size``, ``hash`` (base64 SHA-1,
  as for a CDA) and ``data`` of the document the message carries.
"""

from __future__ import annotations

import base64
from typing import Any

from lxml import etree

from eai.hl7 import Hl7Message
from mappings._context import MappingContext
from mappings._registry import mapping_function
from mappings.functions.cda_document import attachment_of
from mappings.functions.cda_types import identifier
from mappings.functions.cisis_source import CisisDocument

__all__ = [
    "ACTION_TAG_SYSTEM",
    "DMP_CONFIDENTIALITY",
    "cisis_action",
    "cisis_attachment",
    "cisis_copy",
]

ACTION_TAG_SYSTEM = "urn:eai:document-action"
DMP_CONFIDENTIALITY = "urn:oid:1.2.250.1.213.1.1.4.13"
_MASKS = {
    "MASQUE_PS": "MASQUE_PS",
    "INVISIBLE_PATIENT": "INVISIBLE_PATIENT",
    "INVISIBLE_REP_LEGAUX": "INVISIBLE_REPRESENTANTS_LEGAUX",
}


def _document(ctx: MappingContext) -> CisisDocument:
    if not isinstance(ctx.document, CisisDocument):
        raise ValueError("this function reads a 'cisis' source (CDA in HL7 v2)")
    return ctx.document


def parent_document(message: Hl7Message) -> dict[str, str] | None:
    """TXA-13 (EI: ``58131^^1.2.250...^ISO``, or an OID alone) as an Identifier, or None."""
    entity, root = message.get("TXA-13.1").strip(), message.get("TXA-13.3").strip()
    if not entity:
        return None
    attrs = {"root": root, "extension": entity} if root else {"root": entity}
    return identifier(etree.Element("id", attrs))


def _urls(ctx: MappingContext, document: CisisDocument) -> dict[str, str]:
    """Inner fullUrl -> this Bundle's fullUrl, by resource type and order (built once)."""
    if document.relinks is not None:
        return document.relinks
    outer: dict[str, list[str]] = {}
    for instances in ctx.instances.values():
        for resource in instances:
            outer.setdefault(str(resource["resourceType"]), []).append(ctx.urls[id(resource)])
    relinks: dict[str, str] = {}
    inner: dict[str, list[str]] = {}
    for entry in document.bundle["entry"]:
        inner.setdefault(str(entry["resource"]["resourceType"]), []).append(entry["fullUrl"])
    for kind, urls in inner.items():
        mine = outer.get(kind, [])
        if len(mine) != len(urls):
            raise ValueError(
                f"the CDA gave {len(urls)} {kind} but the mapping declares {len(mine)}: "
                f'declare a resource with for_each: "entry:{kind}"'
            )
        relinks.update(zip(urls, mine, strict=True))
    document.relinks = relinks
    return relinks


@mapping_function("cisis_copy")
def cisis_copy(ctx: MappingContext) -> None:
    """The resource becomes the inner one (the ``for_each`` item), references re-pointed."""
    document = _document(ctx)
    entry = ctx.item
    if not isinstance(entry, dict) or "resource" not in entry:
        raise ValueError('cisis_copy runs under for_each: "entry:<Type>"')
    relinks = _urls(ctx, document)
    resource = _relinked(entry["resource"], relinks)
    profile = ctx.resource.get("meta", {}).get("profile")
    ctx.resource.update(resource)
    if profile:
        ctx.resource.setdefault("meta", {})["profile"] = profile


def _relinked(value: Any, urls: dict[str, str]) -> Any:
    """A copy of the JSON ``value`` (dicts and lists copied, scalars shared: they are
    immutable), every ``reference`` found in ``urls`` re-pointed; one pass, several
    times cheaper than ``copy.deepcopy`` then a walk."""
    if isinstance(value, dict):
        out = {}
        for key, inner in value.items():
            if key == "reference" and isinstance(inner, str):
                out[key] = urls.get(inner, inner)
            elif isinstance(inner, dict | list):
                out[key] = _relinked(inner, urls)
            else:
                out[key] = inner
        return out
    if isinstance(value, list):
        return [_relinked(item, urls) if isinstance(item, dict | list) else item for item in value]
    return value


@mapping_function("cisis_action")
def cisis_action(ctx: MappingContext) -> None:
    """Mark the DocumentReference with the action requested (see the module docstring)."""
    document = _document(ctx)
    resource = ctx.resource
    action = document.action
    if action:
        meta = resource.setdefault("meta", {})
        meta.setdefault("tag", []).append({"system": ACTION_TAG_SYSTEM, "code": action})
    if action == "delete":
        resource["status"] = "entered-in-error"
    if action == "replace":
        parent = parent_document(document.message)
        relates = resource.get("relatesTo", [])
        known = [r.get("target", {}).get("identifier") for r in relates]
        if parent is not None and parent not in known:
            relates.append({"code": "replaces", "target": {"identifier": parent}})
        if relates:
            resource["relatesTo"] = relates
    labels = [
        {"coding": [{"system": DMP_CONFIDENTIALITY, "code": code}]}
        for flag, code in _MASKS.items()
        if document.flags.get(flag) == "Y"
    ]
    if labels:
        resource["securityLabel"] = resource.get("securityLabel", []) + labels


@mapping_function("cisis_attachment")
def cisis_attachment(ctx: MappingContext) -> None:
    """The document carried without a CDA as ``content[0].attachment`` (module docstring)."""
    carried = _document(ctx).carried
    if carried is None:
        raise ValueError('cisis_attachment runs under for_each: "document:not-cda"')
    contents = ctx.resource.setdefault("content", [])
    if not contents:
        contents.append({})
    attachment = contents[0].setdefault("attachment", {})
    attachment["contentType"] = carried.media_type
    attachment.update(attachment_of(carried.data))
    attachment["data"] = base64.b64encode(carried.data).decode("ascii")
