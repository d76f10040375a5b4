"""Hardened XML parsing: the one way the engine turns untrusted bytes into an lxml tree.

Touches: nothing (no file, no network: entity resolution, DTD loading and
network access are off, and any resolver call is refused).

Every CDA that reaches the engine (file drop, HTTP, an ED in an ORU/MDM,
``eai convert``) goes through :func:`parse_xml`:

* libxml2 runs with ``resolve_entities=False``, ``load_dtd=False``,
  ``dtd_validation=False``, ``no_network=True``, ``huge_tree=False`` (depth
  and text-node limits stay on, and so does the entity amplification check
  that stops "billion laughs" at once);
* a document whose DOCTYPE names an external DTD, or declares anything
  (entities, elements, attribute lists), is refused: CDA R2 documents carry no
  DOCTYPE, so nothing legitimate is lost, and XXE (``file:``, ``http:``) or
  entity expansion cannot be smuggled through a declaration left unexpanded;
* XInclude elements are refused (lxml never processes them unless asked;
  refusing them keeps a later ``xinclude()`` call from reading files);
* a custom resolver refuses every external fetch libxml2 might still attempt.

Failures raise :class:`eai.errors.InputError` with a reason fit for the sender
(no document content, only libxml2's message and the line).
"""

from __future__ import annotations

import threading

from lxml import etree

from eai.errors import InputError

__all__ = ["XINCLUDE_NAMESPACES", "parse_xml"]

XINCLUDE_NAMESPACES = ("http://www.w3.org/2001/XInclude", "http://www.w3.org/2003/XInclude")

_local = threading.local()


class _RefuseResolver(etree.Resolver):
    """Answers every external entity / DTD request with an error (defence in depth)."""

    def resolve(self, system_url: str | None, public_id: str | None, context: object) -> None:
        raise _ExternalFetch(system_url or public_id or "?")


class _ExternalFetch(Exception):
    """libxml2 asked the resolver for an external resource."""


def _parser() -> etree.XMLParser:
    """One parser per thread: an lxml parser must not be used by two threads at once."""
    parser: etree.XMLParser | None = getattr(_local, "parser", None)
    if parser is None:
        parser = etree.XMLParser(
            resolve_entities=False,
            load_dtd=False,
            dtd_validation=False,
            no_network=True,
            huge_tree=False,
            remove_blank_text=False,
            collect_ids=False,
        )
        parser.resolvers.add(_RefuseResolver())
        _local.parser = parser
    return parser


def parse_xml(data: bytes) -> etree._Element:
    """Parses ``data`` with the hardened settings; returns the root element.

    Raises :class:`InputError` when ``data`` is not well-formed XML or uses a
    DOCTYPE with declarations, an external DTD, or XInclude.
    """
    if not data.strip():
        raise InputError("empty document: no XML received")
    try:
        root = etree.fromstring(data, _parser())
    except _ExternalFetch:
        raise InputError(
            "XML refused: it asks to load an external resource (external DTD or entity)"
        ) from None
    except etree.XMLSyntaxError as exc:
        raise InputError(_syntax_reason(exc)) from None
    _check_doctype(root.getroottree())
    for ns in XINCLUDE_NAMESPACES:
        for element in root.iter(f"{{{ns}}}*"):
            raise InputError(
                f"XML refused: XInclude element at line {element.sourceline} "
                "(documents may not include other files)"
            )
    return root


def _check_doctype(tree: etree._ElementTree) -> None:
    info = tree.docinfo
    if info.system_url or info.public_id:
        raise InputError(
            "XML refused: the DOCTYPE names an external DTD (external DTDs are never loaded)"
        )
    dtd = info.internalDTD
    if dtd is None:
        return
    if any(True for _ in dtd.iterentities()):
        raise InputError(
            "XML refused: the DOCTYPE declares entities (XXE and entity expansion are not accepted)"
        )
    if any(True for _ in dtd.iterelements()):
        raise InputError("XML refused: the DOCTYPE declares elements (DTDs are not accepted)")


def _syntax_reason(exc: etree.XMLSyntaxError) -> str:
    # libxml2 repeats the position at the end of its message: keep the first part.
    message = str(exc.msg or exc).strip().split(", line ", 1)[0]
    lowered = message.lower()
    line = f" (line {exc.lineno})" if exc.lineno else ""
    if "amplification" in lowered or ("entity" in lowered and "loop" in lowered):
        return f"XML refused: entity expansion attack (billion laughs){line}"
    if "entity" in lowered:
        return f"XML refused: entity references are not accepted: {message}{line}"
    if "excessive depth" in lowered:
        return f"XML refused: elements nested too deeply (limit 256){line}"
    return f"XML is not well-formed: {message}{line}"
