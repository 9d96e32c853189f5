"""Secrets masked before anything is shown (drygate.review.mask): by key at any depth, and
by shape in any text; the policy adds its own keys and patterns."""

import pytest

from drygate.review.mask import MASK, Masker

SHAPES = [
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----",
    "AKIAIOSFODNN7EXAMPLE",
    "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9abcdefgh",
    "curl -H 'X-Api-Key: 9f8e7d6c5b4a' https://api",
    "password=hunter2xyz",
    "mysql --password hunter2xyz -e 'select 1'",
    "CREATE USER bob IDENTIFIED BY 'hunter2xyz'",
    "postgres://admin:hunter2xyz@db.internal/app",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
    "xoxb-1234567890-abcdefghij",
    "sk_live_abcdefghijklmnop",
    "sk-proj-abcdefghijklmnopqrstuvwxyz012345",
    "AIzaSyA1234567890abcdefghijklmnopqrstuv",
]


@pytest.mark.parametrize("text", SHAPES)
def test_credential_shapes_are_masked_in_any_text(text):
    masked = Masker().text(f"before {text} after")
    assert MASK in masked and masked.startswith("before")
    for secret in ("hunter2xyz", "AKIAIOSFODNN7EXAMPLE", "MIIEpAIBAAKCAQEA", "9f8e7d6c5b4a", "abcdefghijklmnop"):
        assert secret not in masked


def test_keys_mask_at_any_depth_and_the_policy_adds_its_own():
    m = Masker({"review_secret_keys": ("customer_pin",), "review_secret_patterns": (r"ACCT-\d{6}",)})
    value = {"Credentials": {"user": "alice", "pass": "b"}, "headers": [{"X-Auth-Token": "t1"}],
             "Customer-PIN": 1234, "note": "ACCT-123456 paid", "safe": "hello", "flag": True,
             "client_secret": None, "list": ["api_key=abcdef123"]}
    out = m.value(value)
    assert out["Credentials"] == {"user": MASK, "pass": MASK} and out["headers"] == [{"X-Auth-Token": MASK}]
    assert out["Customer-PIN"] == MASK and out["note"] == f"{MASK} paid" and out["safe"] == "hello"
    assert out["flag"] is True and out["client_secret"] is None and out["list"] == [f"api_key={MASK}"]
    assert value["Credentials"]["pass"] == "b"  # a copy: the plan keeps its values
