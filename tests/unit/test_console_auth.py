"""Console roles and password rules (no I/O)."""

from __future__ import annotations

import pytest

from eai.console import MIN_PASSWORD, PAGES, hash_password, role_allows
from eai.errors import EaiError


def test_roles_are_ordered() -> None:
    assert role_allows("admin", "operator") and role_allows("operator", "viewer")
    assert role_allows("viewer", "viewer")
    assert not role_allows("viewer", "operator") and not role_allows("operator", "admin")
    assert not role_allows("root", "viewer")  # an unknown role may do nothing


def test_passwords_are_argon2id_and_long_enough() -> None:
    with pytest.raises(EaiError, match=f"at least {MIN_PASSWORD}"):
        hash_password("short")
    digest = hash_password("a long enough passphrase")
    assert digest.startswith("$argon2id$") and "passphrase" not in digest


def test_every_state_change_needs_an_operator_and_the_audit_an_admin() -> None:
    roles = {(p.path, m): p.role for p in PAGES for m in p.methods}
    assert all(role != "viewer" for (_, method), role in roles.items() if method == "POST")
    assert roles[("/audit", "GET")] == "admin"
    assert roles[("/messages/{message_id:int}/raw", "POST")] == "operator"
