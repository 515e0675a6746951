"""Secret redaction: each default pattern removes its secret and leaves the rest of the line readable."""

from __future__ import annotations

import pytest

from alert_router.redact import DEFAULT_PATTERNS, MASK, Redactor, compile_pattern

AWS_KEY = "AKIA" + "IOSFODNN7EXAMPLE"
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA1c2x\nq9Zm3Qx==\n-----END RSA PRIVATE KEY-----"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"

CASES = [
    # (pattern name, line, secret that must vanish, text that must survive)
    ("bearer", "GET /v1 Authorization: Bearer abc.DEF-123_xyz~+/= ok", "abc.DEF-123_xyz", "GET /v1"),
    ("bearer", "curl -H 'authorization: bearer s3cr3tT0ken' http://x", "s3cr3tT0ken", "http://x"),
    ("basic", "Authorization: Basic dXNlcjpodW50ZXIy then", "dXNlcjpodW50ZXIy", "then"),
    ("key_value", "login failed user=bob password=hunter2 retry=3", "hunter2", "retry=3"),
    ("key_value", 'config {"db_password": "p@ss w0rd", "host": "db"}', "p@ss w0rd", '"host": "db"'),
    ("key_value", "api_key=AbCdEf123456&page=2", "AbCdEf123456", "page=2"),
    ("key_value", "X-Api-Key: 0123456789abcdef", "0123456789abcdef", "X-Api-Key"),
    ("key_value", "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG", "wJalrXUtnFEMI/K7MDENG", "aws_secret_access_key"),
    ("key_value", "client_secret='abc def' token: xyz", "abc def", "client_secret"),
    ("url_credentials", "connect postgres://app:Sup3rS3cret@db:5432/x failed", "Sup3rS3cret", "@db:5432/x failed"),
    ("aws_access_key", f"using key {AWS_KEY} for s3", AWS_KEY, "for s3"),
    ("private_key", f"loaded {PEM} done", "MIIEpAIBAAKCAQEA1c2x", "done"),
    ("private_key", "-----BEGIN PRIVATE KEY----- MIIEvQIBADANBgkqhkiG9w0B (cut", "MIIEvQIBADANBgkq", ""),
    ("jwt", f"session {JWT} expired", JWT[:40], "expired"),
]


@pytest.mark.parametrize(("name", "line", "secret", "keep"), CASES)
def test_default_pattern_removes_its_secret(name: str, line: str, secret: str, keep: str) -> None:
    out = Redactor()(line)
    assert secret not in out
    assert MASK in out
    assert keep in out
    # this very pattern is the one doing it: with only it, the secret is still removed
    only = Redactor([p for p in DEFAULT_PATTERNS if p.name == name], defaults=False)(line)
    assert secret not in only


def test_every_default_pattern_is_exercised() -> None:
    assert {name for name, *_ in CASES} == {p.name for p in DEFAULT_PATTERNS}


def test_harmless_lines_are_untouched() -> None:
    lines = [
        "ERROR model inference failed: shape mismatch (3, 224) vs (3, 256)",
        "token_count=512 tokens=9 basic arithmetic, the bearer of bad tidings",
        "GET /health 200 1.2ms",
    ]
    r = Redactor()
    assert [r(line) for line in lines] == lines


def test_redaction_is_idempotent() -> None:
    r = Redactor()
    once = r("password=hunter2 Bearer abcd1234efgh")
    assert r(once) == once
    assert once == f"password={MASK} Bearer {MASK}"


def test_extra_patterns_with_and_without_a_secret_group() -> None:
    r = Redactor([r"session_id=(?P<secret>\w+)", r"\b\d{4}-\d{4}-\d{4}-\d{4}\b"], defaults=False)
    assert r("session_id=abc123 card 1234-5678-9012-3456 end") == f"session_id={MASK} card {MASK} end"
    # defaults off: only the extras apply
    assert r("password=hunter2") == "password=hunter2"


@pytest.mark.parametrize("bad", ["(unclosed", ".*", "a|"])
def test_invalid_or_empty_matching_extra_patterns_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="redaction pattern"):
        compile_pattern(bad)
