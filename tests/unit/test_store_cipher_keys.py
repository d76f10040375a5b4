"""The journal's sub-keys are HKDF-SHA256 of the master key, as ``cryptography`` derives
them: payloads sealed and patient hashes written before stay readable and findable."""

from __future__ import annotations

import hashlib
import hmac
import os

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from eai.errors import StoreError
from eai.store import Cipher


def _hkdf(master: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(master)


@pytest.mark.parametrize("master", [bytes(32), b"\xff" * 32, os.urandom(32), os.urandom(32)])
def test_sub_keys_are_cryptography_s_hkdf(master: bytes) -> None:
    cipher = Cipher(master)
    # a payload sealed with cryptography's HKDF key opens, and the other way round
    nonce = os.urandom(12)
    theirs = AESGCM(_hkdf(master, b"eai payload v1"))
    assert cipher.open(b"\x01" + nonce + theirs.encrypt(nonce, b"MSH|x", b"\x01")) == b"MSH|x"
    sealed = cipher.seal(b"PID|y")
    assert theirs.decrypt(sealed[1:13], sealed[13:], b"\x01") == b"PID|y"
    # patient identifier hashes and the audit chain's MAC
    hashed = hmac.new(_hkdf(master, b"eai identifier hash v1"), b"IPP-1", hashlib.sha256)
    assert cipher.hash_id(" ipp-1 ") == hashed.hexdigest()[:40]
    mac = hmac.new(_hkdf(master, b"eai audit chain v1"), b"record", hashlib.sha256)
    assert cipher.audit_mac(b"record") == mac.hexdigest()


def test_a_payload_of_another_key_is_a_store_error() -> None:
    sealed = Cipher(os.urandom(32)).seal(b"MSH|x")
    with pytest.raises(StoreError, match="wrong key"):
        Cipher(os.urandom(32)).open(sealed)
