"""The encrypted spool file format: AES-256-GCM in segments, under a per-instance data key.

Touches: nothing (bytes in, bytes out).

Each spool file is sealed with its own random 256-bit data key. The key is
kept only in the instance's journal reference (:class:`dicom_router.reference.InstanceRef`,
field ``key``), which the journal encrypts with the engine's cipher
(``eai.store``: AES-256-GCM under a key derived from ``EAI_KEY`` / ``eai.key``),
as it does every payload. Reading a spool file therefore needs the engine's
master key, as reading the journal does; a file whose journal entry is gone
cannot be read by anyone. The delivery payload (the same reference, sealed in
the outbox) carries the key to the forwarder and to ``eai resend``.

Layout (all integers big endian)::

    "EAISPL" 0x01          magic and format version (7 bytes)
    u16 n, tag (n bytes)   the retention tag, in clear: "<calling AE>\\sha256:<hex>"
                           (the SHA-256 of the SOP Instance UID, never the UID)
    prefix (7 bytes)       random nonce prefix
    segments               plaintext cut in SEGMENT-byte pieces (the last may be
                           shorter or empty), each encrypted to piece + 16-byte tag

Segment ``i`` uses nonce ``prefix || u32(i) || final`` (``final`` 1 on the last
segment only) and as associated data the file's head (magic to tag) plus its
spool name: a segment moved, dropped, repeated or truncated, a head edited or a
file renamed fails authentication (the STREAM construction of Hoang, Reyhanitabar,
Rogaway and Vizar, "Online authenticated-encryption and its nonce-reuse
misuse-resistance", CRYPTO 2015).

The retention tag lets the retention job find the instance's journal entry
(its dedup key ``<listener>|<calling AE>|sha256:<hex>``) without any key.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Iterable, Iterator

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "MAGIC",
    "SEGMENT",
    "SealError",
    "Sealer",
    "is_sealed",
    "new_key",
    "open_sealed",
    "read_tag",
    "retention_tag",
    "sealed_size",
    "uid_digest",
]

MAGIC = b"EAISPL\x01"
SEGMENT = 1 << 20
_TAG_LEN = 16
_PREFIX_LEN = 7
_HEAD_MAX = 256


class SealError(ValueError):
    """A spool file that is not in the sealed format, or fails authentication."""


def new_key() -> bytes:
    """A fresh 256-bit data key."""
    return AESGCM.generate_key(bit_length=256)


def uid_digest(sop_instance_uid: str) -> str:
    """``sha256:<hex>`` of a SOP Instance UID (how it appears in tags and dedup keys)."""
    return "sha256:" + hashlib.sha256(sop_instance_uid.encode("ascii", "replace")).hexdigest()


def retention_tag(calling_ae: str, sop_instance_uid: str) -> str:
    """The clear tag of a spool file: ``<calling AE>\\sha256:<hex of the UID>``."""
    return f"{calling_ae}\\{uid_digest(sop_instance_uid)}"


def sealed_size(size: int, tag: str) -> int:
    """Bytes on disk of a ``size``-byte instance sealed with ``tag``."""
    segments = max(1, -(-size // SEGMENT))
    return len(_head(tag)) + _PREFIX_LEN + size + segments * _TAG_LEN


def _head(tag: str) -> bytes:
    raw = tag.encode("ascii", "replace")
    if len(raw) > _HEAD_MAX:
        raise ValueError("retention tag too long")
    return MAGIC + struct.pack(">H", len(raw)) + raw


def _nonce(prefix: bytes, index: int, final: bool) -> bytes:
    return prefix + struct.pack(">IB", index, 1 if final else 0)


class Sealer:
    """Encrypts one spool file's plaintext, given in pieces, into its sealed bytes."""

    def __init__(self, key: bytes, name: str, tag: str) -> None:
        self._aead = AESGCM(key)
        self.head = _head(tag)
        self._prefix = os.urandom(_PREFIX_LEN)
        self._aad = self.head + name.encode("ascii")

    def seal(self, pieces: Iterable[bytes | memoryview], size: int) -> Iterator[bytes]:
        """Yields the file's bytes: head, nonce prefix, then each sealed segment."""
        yield self.head + self._prefix
        count = max(1, -(-size // SEGMENT))
        index = 0
        pending = bytearray()
        total = 0
        for piece in pieces:
            view = memoryview(piece).cast("B")
            total += len(view)
            while view:
                take = min(len(view), SEGMENT - len(pending))
                if not pending and take == SEGMENT:
                    segment: bytes | bytearray | memoryview = view[:take]
                else:
                    pending += view[:take]
                    segment = pending
                view = view[take:]
                if len(segment) == SEGMENT:
                    final = index == count - 1
                    yield self._aead.encrypt(_nonce(self._prefix, index, final), segment, self._aad)
                    index += 1
                    pending = bytearray()
        if index < count:
            yield self._aead.encrypt(_nonce(self._prefix, index, True), bytes(pending), self._aad)
            index += 1
        if index != count or total != size:
            raise ValueError(f"sealed {index} segments of {count}: size does not match the data")


def is_sealed(data: bytes | memoryview) -> bool:
    """True when ``data`` starts like a sealed spool file."""
    return bytes(data[: len(MAGIC)]) == MAGIC


def read_tag(head: bytes) -> str | None:
    """The clear retention tag from the first bytes of a file (None: not sealed)."""
    if not is_sealed(head) or len(head) < len(MAGIC) + 2:
        return None
    (n,) = struct.unpack_from(">H", head, len(MAGIC))
    raw = head[len(MAGIC) + 2 : len(MAGIC) + 2 + n]
    if len(raw) != n:
        return None
    return raw.decode("ascii", "replace")


def open_sealed(data: bytes | memoryview, name: str, key: bytes) -> bytes:
    """The plaintext of a sealed spool file; :class:`SealError` when it cannot be authenticated."""
    view = memoryview(data)
    if not is_sealed(view) or len(view) < len(MAGIC) + 2:
        raise SealError("not a sealed spool file")
    (n,) = struct.unpack_from(">H", view, len(MAGIC))
    head_end = len(MAGIC) + 2 + n
    body = head_end + _PREFIX_LEN
    if len(view) < body + _TAG_LEN:
        raise SealError("sealed spool file is truncated")
    aad = bytes(view[:head_end]) + name.encode("ascii")
    prefix = bytes(view[head_end:body])
    aead = AESGCM(key)
    out = bytearray()
    pos = body
    index = 0
    step = SEGMENT + _TAG_LEN
    while True:
        chunk = view[pos : pos + step]
        final = pos + len(chunk) >= len(view)
        try:
            out += aead.decrypt(_nonce(prefix, index, final), chunk, aad)
        except InvalidTag:
            raise SealError(
                f"segment {index} fails authentication (file altered, truncated or renamed, "
                "or not sealed with this instance's key)"
            ) from None
        if final:
            return bytes(out)
        pos += step
        index += 1
