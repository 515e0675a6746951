"""Secret redaction: each default pattern removes its secret and leaves the rest of the line readable."""

from __future__ import annotations

import pytest

from alert_router.redact import DEFAULT_PATTERNS, MASK, Redactor, compile_pattern

# Real-looking, fake credentials, assembled from parts so that secret scanners do not flag this file.
AWS_KEY = "AKIA" + "IOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/" + "bPxRfiCYEXAMPLEKEY"
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA1c2x\nq9Zm3Qx==\n-----END RSA PRIVATE KEY-----"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
XOXB = "xox" + "b-2048123456-4019876543210-Zq8vKf3LmN0pRsT7uVwXyA12"
XOXP = "xox" + "p-2048123456-2048765432-4019876543210-9f8e7d6c5b4a39281706f5e4d3c2b1a0"
XAPP = "xa" + "pp-1-A05BC3DEF12-4019876543210-" + "9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0"
SLACK_HOOK_SECRET = "T0A1B2C3D/B0F1E2D3C/" + "Zq8vKf3LmN0pRsT7uVwXyA12"
GHP = "gh" + "p_" + "R2d2C3poL7kQx9ZmW4nB8vT1sY6uJ0aE3hF5"
GITHUB_PAT = ("github_" + "pat_11ABCDEFG0" + "aBcDeFgHiJkLmN_"
              + "OpQrStUvWxYz0123456789AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abc")
GLPAT = "gl" + "pat-" + "xY9zA8bC7dE6fG5hI4jK"
OPENAI = "sk-" + "proj-" + "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7cDe0fGh3iJk6lMn"
OPENAI_LEGACY = "sk-" + "Zq8vKf3LmN0pRsT7uVwXT3BlbkFJ" + "Ab3dEf6hIj9kLm2nOp5q"
ANTHROPIC = "sk-" + "ant-api03-" + "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7cDe0fGh3iJk6lMn-AA"
STRIPE = "sk_" + "live_" + "51HZq8vKf3LmN0pRsT7uVwXyA12bC"
GOOGLE = "AI" + "za" + "SyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY"
TELEGRAM = "7012345678:" + "AAH" + "kx9VqZ8mT3pL5nR2wY7cB4dF6gJ1hK0s"
SENDGRID = "SG." + "aB3dEf6hIj9kLm2nOp5qRs" + "." + "Tu8vWx1yZa4bCd7eFg0hIj3kLm6nOp9qRs2tUv5wXy8"

CASES = [
    # (pattern name, line, secret that must vanish, text that must survive)
    ("authorization", "GET /v1 Authorization: Bearer abc.def.ghi ok", "abc.def.ghi", "GET /v1"),
    ("authorization", "Authorization: Token 9f8e7d6c5b4a3928 sent", "9f8e7d6c5b4a3928", "sent"),
    ("authorization", "proxy-authorization: ApiKey k3y-V4lue-hidden", "k3y-V4lue-hidden", "proxy-authorization"),
    ("authorization", '{"Authorization": "0123456789abcdef0123"}', "0123456789abcdef0123", "Authorization"),
    ("bearer", "upstream said: 401 invalid credentials: Bearer sometokenvalue", "sometokenvalue", "401"),
    ("bearer", "curl -H 'X-Auth: bearer s3cr3tT0ken' http://x", "s3cr3tT0ken", "http://x"),
    ("bearer", "loki: 401 invalid credentials: Bearer abc.def.ghi", "abc.def.ghi", "credentials: Bearer "),
    ("basic", "proxy sent Basic dXNlcjpodW50ZXIy then", "dXNlcjpodW50ZXIy", "then"),
    ("key_value", "login failed user=bob password=hunter2 retry=3", "hunter2", "retry=3"),
    ("key_value", 'config {"db_password": "p@ss w0rd", "host": "db"}', "p@ss w0rd", '"host": "db"'),
    ("key_value", "api_key=AbCdEf123456&page=2", "AbCdEf123456", "page=2"),
    ("key_value", "X-Api-Key: 0123456789abcdef", "0123456789abcdef", "X-Api-Key"),
    ("key_value", f"aws_secret_access_key = {AWS_SECRET}", AWS_SECRET, "aws_secret_access_key"),
    ("key_value", "client_secret='abc def' token: xyz", "abc def", "client_secret"),
    ("key_value", "GET /cb?code=1&access_token=ya29.A0ARrdaM&state=x", "ya29.A0ARrdaM", "state=x"),
    ("cli_flag", "exec: pg_dump --password hunter2 --host db", "hunter2", "--host db"),
    ("cli_flag", "args: ['--db-password', 'x'] cmd --api-key=AbC123xyz --v", "AbC123xyz", "--v"),
    ("cli_flag", 'run --client-secret "s3 cr3t" done', "s3 cr3t", "done"),
    ("url_credentials", "connect postgres://app:Sup3rS3cret@db:5432/x failed", "Sup3rS3cret", "@db:5432/x failed"),
    ("slack_token", f"slack client init token={XOXB[:4]}… full {XOXB} ok", XOXB, "ok"),
    ("slack_token", f"SLACK_USER_TOKEN {XOXP} set", XOXP, "set"),
    ("slack_token", f"socket mode with {XAPP}", XAPP, "socket mode"),
    ("slack_token", f"POST https://hooks.slack.com/services/{SLACK_HOOK_SECRET} 404", SLACK_HOOK_SECRET, "404"),
    ("github_token", f"git clone https://x:{GHP}@github.com/o/r", GHP, "github.com/o/r"),
    ("github_token", f"GITHUB_TOKEN {GITHUB_PAT} expired", GITHUB_PAT, "expired"),
    ("github_token", f"gitlab {GLPAT} revoked", GLPAT, "revoked"),
    ("api_key_prefix", f"openai.AuthenticationError: Incorrect API key provided: {OPENAI}.", OPENAI, "Incorrect"),
    ("api_key_prefix", f"OPENAI_API_KEY {OPENAI_LEGACY}", OPENAI_LEGACY, "OPENAI_API_KEY"),
    ("api_key_prefix", f"anthropic client {ANTHROPIC} 401", ANTHROPIC, "401"),
    ("api_key_prefix", f"stripe {STRIPE} declined", STRIPE, "declined"),
    ("api_key_prefix", f"maps {GOOGLE} quota", GOOGLE, "quota"),
    ("api_key_prefix", f"sendgrid {SENDGRID} 403", SENDGRID, "403"),
    ("telegram_bot_token", f"POST https://api.telegram.org/bot{TELEGRAM}/sendMessage 409", TELEGRAM, "sendMessage"),
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


ORDINARY = [
    "ERROR model inference failed: shape mismatch (3, 224) vs (3, 256)",
    "token_count=512 tokens=9 basic arithmetic, the bearer of bad tidings",
    "GET /health 200 1.2ms",
    "WARN bearer authentication failed for user bob: invalid bearer token",
    "Authorization: denied for user bob (role viewer)",
    "2026-11-27T00:01:01.158Z INFO worker-3 processed batch 17 in 0.52s (12:00:01 local)",
    'level=info msg="request done" status=200 duration=12ms path=/api/v1/tokens user=bob',
    'cache key: user:42 hit, passing 12 tests, secret santa draw at 5pm, password reset email sent',
    "skipped sk-learn pipeline; gh_pages deployed; npm_config_cache=/tmp/npm",
    "started with --log-level debug --token-file /var/run/secrets/token --password-file /run/pw",
    "connect to http://db:5432/app ok; see https://github.com/org/repo/issues/42",
    'Traceback (most recent call last): File "/app/main.py", line 12, in <module>',
    '{"level":"error","msg":"CUDA error: out of memory","gpu":0,"key":"model-api"}',
    "k8s: Back-off restarting failed container model-api in pod model-api-7d9f-1 (exit code 137)",
    "user=bob logged in from 10.0.0.1:51234 session 7f3a9c",
]


def test_every_default_pattern_is_exercised() -> None:
    assert {name for name, *_ in CASES} == {p.name for p in DEFAULT_PATTERNS}


def test_harmless_lines_are_untouched() -> None:
    r = Redactor()
    assert [r(line) for line in ORDINARY] == ORDINARY


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
