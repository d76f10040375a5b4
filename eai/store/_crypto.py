"""Encryption of payloads at rest (AES-256-GCM) and keyed hashes of patient ids.

Touches: files (the key file in data_dir, created 0600 on first run).

The master key comes from ``EAI_KEY`` (base64 or hex of 32 bytes) or from
``<data_dir>/eai.key``. Two sub-keys are derived from it with HKDF: one for
AES-GCM, one for HMAC-SHA256 of patient identifiers, so ``--patient ID`` can
find messages without the identifier being stored in clear.

HKDF-SHA256 without salt (RFC 5869: extract with a zero salt, one expand block for 32
bytes) is two HMACs of the standard library, and the AES-GCM object is made at the
first seal or open: opening the journal to list it (``eai messages list``) does not
import ``cryptography`` (a tenth of that command's start-up). A unit test holds both
derived keys equal to ``cryptography``'s HKDF.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from pathlib import Path
from typing import TYPE_CHECKING

from eai.errors import ConfigError, ConfigIssue, StoreError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["KEY_FILE", "Cipher", "load_master_key"]

KEY_FILE = "eai.key"
_VERSION = b"\x01"


def _derive(master: bytes, info: bytes) -> bytes:
    """HKDF-SHA256 (RFC 5869), no salt, 32 bytes of output: one expand block."""
    prk = hmac.new(b"\x00" * hashlib.sha256().digest_size, master, hashlib.sha256).digest()
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()


def _decode_key(text: str) -> bytes:
    text = text.strip()
    for decode in (bytes.fromhex, base64.b64decode):
        try:
            raw = decode(text)
        except (ValueError, binascii.Error):
            continue
        if len(raw) == 32:
            return raw
    raise ValueError("a key is 32 bytes, written as 64 hex digits or base64")


def load_master_key(data_dir: Path, env_value: str | None) -> bytes:
    """The master key: from ``EAI_KEY`` if set, else the key file (created if absent)."""
    if env_value:
        try:
            return _decode_key(env_value)
        except ValueError as exc:
            raise ConfigError([ConfigIssue("EAI_KEY", 1, 1, str(exc))]) from exc
    path = data_dir / KEY_FILE
    try:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not path.exists():
            _create_key_file(path)
        _keep_private(path)
        text = path.read_text()
    except PermissionError as exc:
        raise StoreError(
            f"{path}: permission denied; the journal and its key belong to the engine's "
            "service account: a person reads payloads through the running engine "
            "(eai messages show ID --raw)"
        ) from exc
    try:
        return _decode_key(text)
    except ValueError as exc:
        raise ConfigError([ConfigIssue(str(path), 1, 1, str(exc))]) from exc


def _keep_private(path: Path) -> None:
    """A key file open to others (copied in by hand, an older install) becomes 0600 when
    it is ours; the key is the engine service account's alone (README, "Audited access
    to health data")."""
    st = path.stat()
    if st.st_mode & 0o077 and st.st_uid == os.geteuid():
        path.chmod(0o600)


def _create_key_file(path: Path) -> None:
    """Write a new key to a temporary file, fsync it, then link it into place.

    A crash (kill -9, power loss) leaves either no key file or a complete one, never
    an empty one that would stop every later start; if another process linked its key
    first, that key is kept.
    """
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(os.urandom(32).hex() + "\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    finally:
        tmp.unlink(missing_ok=True)


class Cipher:
    """Seals payloads and hashes identifiers with keys derived from the master key."""

    def __init__(self, master_key: bytes) -> None:
        self._payload_key = _derive(master_key, b"eai payload v1")
        self._aead_made: AESGCM | None = None
        self._hmac_key = _derive(master_key, b"eai identifier hash v1")
        self._id_hmac = hmac.new(self._hmac_key, digestmod=hashlib.sha256)
        self._audit_key = _derive(master_key, b"eai audit chain v1")

    @property
    def _aead(self) -> AESGCM:
        """AES-GCM with the payload key, made at first use (two threads may each make
        one: the same key, no harm)."""
        if self._aead_made is None:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM

            self._aead_made = AESGCM(self._payload_key)
        return self._aead_made

    def __repr__(self) -> str:
        return "Cipher(<secret>)"

    def __getstate__(self) -> dict[str, object]:
        """The derived keys, for the engine's own planning processes
        (``eai._plan_pool``, over a pipe to a child): the AES-GCM and HMAC objects are made
        again."""
        state = {**self.__dict__, "_aead_made": None}
        del state["_id_hmac"]
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._id_hmac = hmac.new(self._hmac_key, digestmod=hashlib.sha256)

    def seal(self, plaintext: bytes) -> bytes:
        nonce = os.urandom(12)
        return _VERSION + nonce + self._aead.encrypt(nonce, plaintext, _VERSION)

    def open(self, sealed: bytes) -> bytes:
        if not sealed or sealed[:1] != _VERSION:
            raise StoreError("stored payload has an unknown format")
        try:
            return self._aead.decrypt(sealed[1:13], sealed[13:], _VERSION)
        except Exception as exc:
            from cryptography.exceptions import InvalidTag  # imported by the decrypt above

            if isinstance(exc, InvalidTag):
                raise StoreError(
                    "payload cannot be decrypted: wrong key (EAI_KEY / eai.key)?"
                ) from exc
            raise

    def hash_id(self, identifier: str) -> str:
        """Keyed hash of an identifier (case and surrounding spaces ignored)."""
        msg = identifier.strip().upper().encode("utf-8")
        mac = self._id_hmac.copy()  # the key's two blocks hashed once, not per identifier
        mac.update(msg)
        return mac.hexdigest()[:40]

    def audit_mac(self, data: bytes) -> str:
        """HMAC-SHA256 (hex) of an audit record with its own derived key (eai.store._audit)."""
        return hmac.new(self._audit_key, data, hashlib.sha256).hexdigest()

    def key_check(self) -> str:
        """A value stored in the journal to detect a wrong key at start-up."""
        return self.hash_id("eai key check")
