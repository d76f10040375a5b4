"""Payload encryption, key file handling, keyed hashes."""

import os
import stat

import pytest

from eai.errors import ConfigError, StoreError
from eai.store import KEY_FILE, Cipher, load_master_key


def test_key_file_created_0600_and_reused(tmp_path):
    k1 = load_master_key(tmp_path, None)
    mode = stat.S_IMODE(os.stat(tmp_path / KEY_FILE).st_mode)
    assert mode == 0o600
    assert load_master_key(tmp_path, None) == k1
    assert len(k1) == 32


def test_env_key_wins_and_is_validated(tmp_path):
    key = os.urandom(32)
    assert load_master_key(tmp_path, key.hex()) == key
    assert not (tmp_path / KEY_FILE).exists()
    with pytest.raises(ConfigError, match="32 bytes"):
        load_master_key(tmp_path, "too-short")


def test_seal_open_roundtrip_and_no_clear_text():
    c = Cipher(os.urandom(32))
    plain = b"MSH|^~\\&|GAM|CHU-X\rPID|1||000003^^^CHU-X||PAT-TROIS^DOMINIQUE"
    sealed = c.seal(plain)
    assert b"PAT-TROIS" not in sealed
    assert c.open(sealed) == plain
    assert c.seal(plain) != sealed  # fresh nonce each time


def test_wrong_key_is_a_clear_store_error():
    sealed = Cipher(os.urandom(32)).seal(b"x")
    with pytest.raises(StoreError, match="wrong key"):
        Cipher(os.urandom(32)).open(sealed)


def test_hash_is_keyed_and_normalised():
    k = os.urandom(32)
    c = Cipher(k)
    assert c.hash_id("279035121518989") == c.hash_id(" 279035121518989 ")
    assert c.hash_id("abc") == c.hash_id("ABC")
    assert Cipher(os.urandom(32)).hash_id("279035121518989") != c.hash_id("279035121518989")
    assert "279035121518989" not in c.hash_id("279035121518989")
    assert "secret" in repr(c) and k.hex() not in repr(c)
