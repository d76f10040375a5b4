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
from typing import TYPE_CHECKING, Any, cast

from lxml import etree

from eai.errors import InputError

if TYPE_CHECKING:
    from lxml.etree import ParserTarget  # the stubs' protocol of a parser target

__all__ = ["XINCLUDE_NAMESPACES", "check_xml", "parse_xml"]

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


class _Checked:
    """A parser target that builds nothing (no tree, no Python call per element: libxml2
    reads and checks the whole document) and notes what :func:`parse_xml` checks on the
    tree: a DOCTYPE, a namespace declared as XInclude's (its name as libxml2 read it,
    character references resolved)."""

    def __init__(self) -> None:
        self.doubt = False

    def doctype(self, name: str | None, public_id: str | None, system_url: str | None) -> None:
        self.doubt = True

    def start_ns(self, prefix: str | None, uri: str) -> None:
        if uri in XINCLUDE_NAMESPACES:
            self.doubt = True

    def close(self) -> None:
        return None


def _checker() -> tuple[Any, _Checked]:
    """:func:`_parser`'s settings with a :class:`_Checked` target, one per thread."""
    found: tuple[Any, _Checked] | None = getattr(_local, "checker", None)
    if found is None:
        target = _Checked()
        parser = etree.XMLParser(
            target=cast("ParserTarget[None]", target),
            resolve_entities=False,
            load_dtd=False,
            dtd_validation=False,
            no_network=True,
            huge_tree=False,
            remove_blank_text=False,
            collect_ids=False,
        )
        parser.resolvers.add(_RefuseResolver())
        found = _local.checker = (parser, target)
    return found


def check_xml(data: bytes) -> None:
    """Raises :class:`InputError` when :func:`parse_xml` would refuse ``data``, with the
    same reason, without building its tree (for a caller that reads only part of a
    document it parsed otherwise, and must still refuse what the whole would be refused
    for): libxml2 parses the whole document with the same settings and a target that
    builds nothing, about a third of the cost of the tree.

    What this cannot decide is left to :func:`parse_xml` itself, so that the answer is
    its answer: a document libxml2 refuses or says anything about (a namespace prefix not
    declared is not fatal to libxml2), one with a DOCTYPE or an XInclude namespace."""
    if not data or data.isspace():
        parse_xml(data)
        return
    parser, target = _checker()
    target.doubt = False
    try:
        etree.fromstring(data, parser)
    except (etree.XMLSyntaxError, _ExternalFetch):
        parse_xml(data)  # raises the reason parse_xml gives
        return
    if target.doubt or len(parser.error_log):
        parse_xml(data)


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
