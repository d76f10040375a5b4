"""The ``dmp`` destination: publish (ITI-41) or delete (ITI-57) one CDA document per delivery.

Touches: network (HTTPS with mutual TLS to the DMP repository), files (the TLS and seal
certificates and keys, read when the destination is built).

One send: the outbox item read into a publication (:mod:`connectors.dmp._source`), its
metadata (:mod:`._metadata`, :mod:`._ebrim`) with the submission set's XAdES signature
document (:mod:`._dsg`), a VIHF signed for it (:mod:`._vihf`), the
MTOM package (:mod:`._soap`) POSTed with httpx, the answer read into delivered, retry or
dead letter (:mod:`._response`). A deletion (``document_action`` ``delete``) is an ITI-57
status change sent to the registry instead (:mod:`._delete`). Building and signing run off
the event loop
(:func:`eai.net.run_blocking`). Connection trouble (refused, reset, TLS failure, timeout)
is transient; nothing about the document is logged. The type is registered by
:mod:`connectors.dmp.registration` (imported here), whose factory imports this module.
"""

from __future__ import annotations

import logging
import ssl
import uuid
from dataclasses import replace
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree

from connectors.dmp import registration  # noqa: F401 - loading the plugin registers its type
from connectors.dmp._delete import deletion_request
from connectors.dmp._dsg import build_dsg
from connectors.dmp._response import read_response
from connectors.dmp._soap import MtomMessage, mtom_message
from connectors.dmp._source import publication_of
from connectors.dmp._vihf import SigningIdentity, build_vihf
from connectors.dmp._zam import business_ack
from connectors.dmp.config import DmpDestinationConfig
from eai.errors import ConfigError, ConfigIssue, DeliveryError, TransientDeliveryError
from eai.messages import DeliveryResult, OutboxItem
from eai.net import client_context, run_blocking
from eai.xds import build_metadata, build_request, signature_entry

__all__ = ["DmpDestination", "load_signing_identity", "prepare", "prepare_request"]

log = logging.getLogger(__name__)


def _issue(path: Path, message: str) -> ConfigError:
    return ConfigError([ConfigIssue(file=str(path), line=0, column=0, message=message)])


def load_signing_identity(cert_path: Path, key_path: Path) -> SigningIdentity:
    """The seal's certificate and RSA key from PEM files; ConfigError naming the file."""
    try:
        certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError) as exc:
        raise _issue(cert_path, f"cannot load the seal certificate: {exc}") from exc
    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise _issue(key_path, f"cannot load the seal key: {exc}") from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise _issue(key_path, "the seal key must be RSA (the VIHF is signed RSA-SHA256)")
    return SigningIdentity(key, certificate)


def prepare(config: DmpDestinationConfig, signer: SigningIdentity, item: OutboxItem) -> MtomMessage:
    """The ITI-41 HTTP body for ``item`` (blocking: parse, build, sign)."""
    publication = publication_of(item)
    submission, entry = build_metadata(publication, config.metadata_settings())
    signature_id = f"2.25.{uuid.uuid4().int}"
    signature = build_dsg([(entry.unique_id, publication.document)], signature_id, signer)
    signed = signature_entry(entry, submission, signature, signature_id)
    request = build_request(submission, entry, b"", (signed, b""))
    assertion = build_vihf(
        publication.header.author,
        publication.ins,
        publication.ins_oid,
        publication.flags.get("CONNEXION_SECRETE") == "Y",
        config.vihf_settings(),
        signer,
    )
    return mtom_message(
        request,
        {entry.entry_uuid: publication.document, signed.entry_uuid: signature},
        etree.tostring(assertion),
        config.url,
    )


def prepare_request(
    config: DmpDestinationConfig, signer: SigningIdentity, item: OutboxItem
) -> tuple[str, MtomMessage]:
    """(endpoint, HTTP body) for ``item`` (blocking): a deletion (``document_action``
    ``delete``) is an ITI-57 to the registry (:mod:`._delete`), anything else an ITI-41
    publication to the repository (:func:`prepare`)."""
    if item.facts.flags.get("document_action") == "delete":
        return deletion_request(config, signer, publication_of(item))
    return config.url, prepare(config, signer, item)


class DmpDestination:
    """Publishes :class:`~eai.messages.OutboxItem` documents to one DMP repository."""

    def __init__(self, config: DmpDestinationConfig) -> None:
        self.config = config
        # Built now so that a bad certificate path fails at start, not at the first send.
        self._ssl: ssl.SSLContext = client_context(config.tls)
        self._signer = load_signing_identity(config.sign_cert, config.sign_key)
        self._client: httpx.AsyncClient | None = None

    async def start(self) -> None:
        self._client_or_new()

    def _client_or_new(self) -> httpx.AsyncClient:
        if self._client is None:
            cfg = self.config
            self._client = httpx.AsyncClient(
                verify=self._ssl,
                timeout=httpx.Timeout(
                    cfg.response_timeout, connect=cfg.connect_timeout, pool=cfg.connect_timeout
                ),
                limits=httpx.Limits(max_connections=cfg.connections),
                follow_redirects=False,
            )
        return self._client

    async def send(self, item: OutboxItem) -> DeliveryResult:
        """Publish (or delete) ``item``'s document: Success returns; see :mod:`._response`
        for the rest. Either way the outcome carries the ZAM^Z01 the message asked for
        (:mod:`._zam`)."""
        try:
            result = await self._publish(item)
        except DeliveryError as exc:
            exc.follow_ups = business_ack(item, exc)
            raise
        return replace(result, follow_ups=business_ack(item))

    async def _publish(self, item: OutboxItem) -> DeliveryResult:
        action = "delete" if item.facts.flags.get("document_action") == "delete" else "publish"
        url, message = await run_blocking(prepare_request, self.config, self._signer, item)
        client = self._client_or_new()
        try:
            async with client.stream(
                "POST",
                url,
                content=message.body,
                headers={
                    "Content-Type": message.content_type,
                    "Accept": "multipart/related, application/soap+xml",
                },
            ) as response:
                body = await self._read(response)
        except httpx.TimeoutException as exc:
            raise TransientDeliveryError(f"DMP: no answer in time ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise TransientDeliveryError(f"DMP: cannot reach the repository: {exc}") from exc
        except ssl.SSLError as exc:
            # TLS 1.3: the server refuses our certificate after the client's handshake is
            # done, so the alert surfaces on the first read, unwrapped by httpx
            raise TransientDeliveryError(f"DMP: TLS refused by the repository: {exc}") from exc
        result = read_response(
            response.status_code,
            response.headers.get("content-type", ""),
            body,
            retry=item.attempts > 1,
            action=action,
        )
        log.info(
            "destination %s: delivery %s %s (%s)",
            self.config.name,
            item.delivery_id,
            "deleted" if action == "delete" else "published",
            message.message_id,
        )
        return result

    async def _read(self, response: httpx.Response) -> bytes:
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > self.config.max_response_bytes:
                raise TransientDeliveryError(
                    f"DMP: answer larger than {self.config.max_response_bytes} bytes"
                )
            chunks.append(chunk)
        return b"".join(chunks)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
