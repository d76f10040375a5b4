"""The ``IHE_XDM.zip`` attachment of an MSSanté mail (IHE ITI XDM, CI-SIS metadata).

Touches: nothing (the zip is built in memory).

Layout (IHE ITI TF-1 §16 and TF-3 §4.3.1; compared with the ANS sample
``ansforge/DRIM-M_DATA`` ``informatif/XDM``):

    INDEX.HTM                      what the media holds, for a person
    README.TXT                     who made it (the sending software)
    IHE_XDM/SUBSET01/METADATA.XML  lcm:SubmitObjectsRequest: the same submission set and
                                   document entry as a DMP publication (eai.xds), plus the
                                   URI slot of the document
    IHE_XDM/SUBSET01/DOC0001.XML   the CDA, byte for byte (hash and size are its own)

File names are upper-case 8.3, as XDM asks of media; none comes from the message. The
ANS sample names its subset ``SS000001`` and writes its URI as ``SS000001/<file>``; IHE
names it ``SUBSETnn`` with the URI relative to METADATA.XML, which is what is done here.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape as html_escape

from lxml import etree

from eai.xds import MetadataSettings, Publication, build_metadata, build_submit_objects

__all__ = ["DOCUMENT", "METADATA", "SUBSET", "Xdm", "build_xdm"]

SUBSET = "IHE_XDM/SUBSET01"
METADATA = f"{SUBSET}/METADATA.XML"
DOCUMENT_NAME = "DOC0001.XML"
DOCUMENT = f"{SUBSET}/{DOCUMENT_NAME}"


@dataclass(frozen=True, slots=True, repr=False)
class Xdm:
    """The zip's bytes and what the mail headers say of its document."""

    data: bytes
    document_code: str
    """The CDA ``code/@code`` (X-MSS-CODECDA)."""
    title: str


def _entry(archive: zipfile.ZipFile, name: str, data: bytes, when: datetime) -> None:
    info = zipfile.ZipInfo(name, date_time=when.timetuple()[:6])
    info.compress_type = zipfile.ZIP_DEFLATED
    # level 1: the CR-BIO's embedded PDF barely compresses; level 6 cost 3.7 ms a document
    archive.writestr(info, data, compresslevel=1)


def _index(title: str, software: str) -> bytes:
    safe = html_escape(title)
    return (
        '<!DOCTYPE html>\r\n<html lang="fr"><head><meta charset="utf-8">'
        f"<title>IHE XDM</title></head><body><h1>IHE XDM</h1>"
        f'<p>Sous-ensemble SUBSET01 : <a href="{DOCUMENT}">{safe}</a> '
        f'(<a href="{METADATA}">métadonnées</a>).</p>'
        f"<p>Produit par {html_escape(software)}.</p></body></html>\r\n"
    ).encode()


def _readme(software: str) -> bytes:
    return (
        f"IHE XDM (IHE ITI Technical Framework, Cross-Enterprise Document Media Interchange)\r\n"
        f"Produit par : {software}\r\n"
        f"Contenu : {METADATA} et le document {DOCUMENT}.\r\n"
    ).encode()


def build_xdm(
    publication: Publication,
    settings: MetadataSettings,
    software: str = "eai",
    *,
    now: datetime | None = None,
) -> Xdm:
    """The zip for ``publication`` (blocking: builds the metadata; raises
    PermanentDeliveryError as :func:`eai.xds.build_metadata` does)."""
    when = (now or datetime.now(UTC)).astimezone(UTC)
    submission, entry = build_metadata(publication, settings, now=when)
    metadata = etree.tostring(
        build_submit_objects(submission, entry, DOCUMENT_NAME),
        xml_declaration=True,
        encoding="UTF-8",
    )
    title = publication.header.title
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        _entry(archive, "INDEX.HTM", _index(title, software), when)
        _entry(archive, "README.TXT", _readme(software), when)
        _entry(archive, METADATA, metadata, when)
        _entry(archive, DOCUMENT, publication.document, when)
    return Xdm(buffer.getvalue(), publication.header.type.code, title)
