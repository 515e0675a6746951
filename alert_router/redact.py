r"""Secret redaction for text that leaves the service: Loki log lines, and upstream error text (see scrub).

Default patterns (each can be turned off as a whole with ``redact.defaults: false``):

* ``private_key`` - ``-----BEGIN … PRIVATE KEY-----`` blocks (to the END line, or to the end of the
  text when the block was cut);
* ``authorization`` - the credential of an ``Authorization:``/``Proxy-Authorization:`` header whatever
  its scheme (``Bearer``, ``Basic``, ``Token``, ``ApiKey``…), or a bare token of 16+ characters;
* ``bearer`` - ``Bearer <token>`` anywhere (curl lines, client errors): a token of 8+ characters, or 6+
  with a capital letter, digit or ``+/``, and not one of a few words that follow "bearer" in prose
  ("bearer authentication failed", "the bearer of bad news" stay readable);
* ``basic`` - ``Basic <base64>`` credentials;
* ``url_credentials`` - ``scheme://user:password@host``; the password goes;
* ``key_value`` - ``password=…``, ``passwd: …``, ``api_key=…``, ``token=…``, ``secret=…``,
  ``access_key=…``, ``client_secret=…`` (any key ending in such a word) and their ``"json": "forms"``; the
  key stays, the value goes;
* ``cli_flag`` - ``--password hunter2``, ``--api-key=…``, ``--client-secret "…"`` (flags whose name ends
  in one of the key words above);
* ``slack_token`` - Slack ``xoxb-``/``xoxp-``/``xoxa-``/``xoxe-``/``xoxr-``/``xoxs-`` tokens, ``xapp-``
  app tokens and the secret part of ``hooks.slack.com`` webhook URLs;
* ``github_token`` - GitHub ``ghp_``/``gho_``/``ghu_``/``ghs_``/``ghr_`` tokens and ``github_pat_``
  fine-grained tokens; GitLab ``glpat-`` tokens;
* ``api_key_prefix`` - keys that announce themselves by prefix: OpenAI-style ``sk-…`` (``sk-proj-``,
  ``sk-ant-``…), Stripe ``sk_live_``/``rk_live_``, Google ``AIza…``, npm ``npm_…``, PyPI ``pypi-…``,
  SendGrid ``SG.….…``;
* ``telegram_bot_token`` - ``123456789:AA…`` bot tokens (the bot id, a colon and 35 characters starting
  with ``A``; also inside ``/bot<token>/`` API URLs);
* ``aws_access_key`` - AWS access key ids (``AKIA…``/``ASIA…`` and the other documented prefixes);
* ``jwt`` - JSON Web Tokens (``eyJ….eyJ….…``).

Each default pattern names a few lower-case "hints" (``xox``, ``bearer``, ``://``…); it only runs when
one of them occurs in the text, and one scan finds them all, so an ordinary line costs a ``lower()`` and
one regular-expression pass (``bench/redact.py`` measures it against detect-secrets' plugins). Every
pattern is linear: no nested quantifiers, and each candidate starts only at a token boundary.

Extra patterns are regular expressions from the configuration. When a pattern has a group named
``secret`` only that group is replaced, otherwise the whole match is.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

__all__ = ["DEFAULT_PATTERNS", "MASK", "RedactPattern", "Redactor", "compile_pattern"]

MASK = "[REDACTED]"


@dataclass(frozen=True)
class RedactPattern:
    """A named regular expression; its secret group(s) (or the whole match) are masked.

    ``hints``: lower-case substrings, one of which must occur in the text for the pattern to run at
    all (empty: always run). ``accept``: an optional test of a match, to leave look-alikes alone.
    Groups named ``secret`` or ``secret_<x>`` are the secret; the first that took part is masked (the whole
    match when none took part).
    """

    name: str
    regex: re.Pattern[str]
    hints: tuple[str, ...] = ()
    accept: Callable[[re.Match[str]], bool] | None = None

    def apply(self, text: str) -> str:
        """Return ``text`` with every match masked."""
        groups = [g for g in self.regex.groupindex if g == "secret" or g.startswith("secret_")]
        accept = self.accept
        if not groups and accept is None:
            return self.regex.sub(MASK, text)

        def repl(m: re.Match[str]) -> str:
            if accept is not None and not accept(m):
                return m.group(0)
            if not groups:
                return MASK
            for g in groups:
                start, end = m.span(g)
                if start >= 0:
                    s0 = m.start(0)
                    whole = m.group(0)
                    return whole[: start - s0] + MASK + whole[end - s0 :]
            return MASK  # an alternative without a secret group: the whole match is the secret

        return self.regex.sub(repl, text)


def compile_pattern(pattern: str, name: str = "custom") -> RedactPattern:
    """Compile a configured pattern; raise ``ValueError`` with a readable message if it is invalid."""
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"invalid redaction pattern {pattern!r}: {exc}") from None
    if regex.fullmatch(""):
        raise ValueError(f"redaction pattern {pattern!r} matches the empty string")
    return RedactPattern(name, regex)


_KEY_WORDS = (
    "password", "passwd", "passphrase", "pwd", "secret", "apikey", "api_key", "api-key", "accesskey", "access_key",
    "access-key", "auth_token", "auth-token", "authtoken", "access_token", "access-token", "refresh_token",
    "refresh-token", "token", "credential", "credentials",
)
_KEY_HINTS = ("pass", "pwd", "secret", "key", "token", "credential")
_KEY_ALTERNATION = "(?:" + "|".join(re.escape(w) for w in sorted(_KEY_WORDS, key=len, reverse=True)) + ")"
_SECRET_KEY = re.compile(_KEY_ALTERNATION + "$")


def _names_a_secret(m: re.Match[str]) -> bool:
    return _SECRET_KEY.search(m.group("key").lower()) is not None


# Words that follow "bearer" in ordinary prose and error messages rather than a credential.
_BEARER_WORDS = frozenset({
    "auth", "authentication", "authorization", "credential", "credentials", "expected", "format", "header",
    "invalid", "missing", "prefix", "realm", "required", "scheme", "token", "tokens", "type",
})


def _bearer_credential(m: re.Match[str]) -> bool:
    token = m.group("secret")
    if token.lower().rstrip("=") in _BEARER_WORDS:
        return False
    return len(token) >= 8 or (len(token) >= 6 and any(c.isupper() or c.isdigit() or c in "+/" for c in token))


_AUTH_SCHEMES = (
    r"bearer|basic|token|digest|negotiate|ntlm|apikey|api-key|key|oauth|sso-key|ssws|splunk|genie-?key|hawk"
    r"|aws4-hmac-sha256|jwt"
)


def _header_credential(m: re.Match[str]) -> bool:
    return m.group("scheme") is not None or len(m.group("secret")) >= 16


DEFAULT_PATTERNS: tuple[RedactPattern, ...] = (
    RedactPattern(
        "private_key",
        re.compile(
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----.*?(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----|\Z)",
            re.DOTALL,
        ),
        ("private key-----",),
    ),
    RedactPattern(
        "authorization",
        re.compile(
            r"(?i)(?<![A-Za-z0-9_-])(?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?"
            r"(?:(?P<scheme>" + _AUTH_SCHEMES + r")\s+)?(?!\[REDACTED\])(?P<secret>[^\s\"',;]+)"
        ),
        ("authorization",),
        _header_credential,
    ),
    RedactPattern(
        "bearer",
        re.compile(r"(?<![A-Za-z0-9_-])(?i:bearer)\s+(?P<secret>[A-Za-z0-9][A-Za-z0-9\-._~+/]*=*)"),
        ("bearer",),
        _bearer_credential,
    ),
    RedactPattern("basic", re.compile(r"\b(?i:basic)\s+(?P<secret>(?=[a-z]*[A-Z0-9+/])[A-Za-z0-9+/]{8,}={0,2})"),
                  ("basic",)),
    RedactPattern("url_credentials", re.compile(r"(?i)\b[a-z][a-z0-9+.-]*://[^\s:/@]+:(?P<secret>[^\s@/]+)@"),
                  ("://",)),
    # Anchored on the key word itself (the key is whatever ends in it), so a non-secret "key: value" pair
    # can never swallow the secret pair after it, and no candidate is scanned twice. "credentials: Bearer x"
    # is left to the bearer pattern (the value is x, not the scheme).
    RedactPattern(
        "key_value",
        re.compile(
            r"(?i)" + _KEY_ALTERNATION + r"[\"']?\s*[=:]\s*(?!\[REDACTED\]|(?:bearer|basic|token|digest)\s)"
            r"(?:\"(?P<secret_dq>[^\"]*)\"|'(?P<secret_sq>[^']*)'|(?P<secret_bare>[^\s\"',;&}\]]+))"
        ),
        _KEY_HINTS,
    ),
    RedactPattern(
        "cli_flag",
        re.compile(
            r"(?<![A-Za-z0-9_-])--?(?P<key>[A-Za-z][A-Za-z0-9_-]{0,60})(?:=|\s+)(?!\[REDACTED\]|-)"
            r"(?:\"(?P<secret_dq>[^\"]*)\"|'(?P<secret_sq>[^']*)'|(?P<secret_bare>[^\s\"']+))"
        ),
        tuple(f"-{h}" for h in _KEY_HINTS) + tuple(f"-{w}" for w in ("password", "passwd", "secret", "token")),
        _names_a_secret,
    ),
    RedactPattern(
        "slack_token",
        re.compile(
            r"(?<![A-Za-z0-9])(?:xox[abeoprs]-[A-Za-z0-9-]{10,}|xapp-\d+-[A-Za-z0-9-]{10,})"
            r"|(?i:hooks\.slack\.com/(?:services|workflows|triggers)/)(?P<secret>[A-Za-z0-9_/-]{10,})"
        ),
        ("xox", "xapp-", "hooks.slack.com"),
    ),
    RedactPattern(
        "github_token",
        re.compile(
            r"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}|glpat-[A-Za-z0-9_-]{20,})"
        ),
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "glpat-"),
    ),
    RedactPattern(
        "api_key_prefix",
        re.compile(
            r"(?<![A-Za-z0-9_-])(?:sk-[A-Za-z0-9_-]{20,}|[sr]k_(?:live|test)_[A-Za-z0-9]{16,}|AIza[A-Za-z0-9_-]{35}"
            r"|npm_[A-Za-z0-9]{36}|pypi-[A-Za-z0-9_-]{50,}|SG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,})"
        ),
        ("sk-", "k_live_", "k_test_", "aiza", "npm_", "pypi-", "sg."),
    ),
    RedactPattern(
        "telegram_bot_token",
        re.compile(r"(?<![0-9])[0-9]{5,16}:A[A-Za-z0-9_-]{34}(?![A-Za-z0-9_-])"),
        (":a",),
    ),
    RedactPattern(
        "aws_access_key",
        re.compile(
            r"(?<![A-Z0-9])(?:AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|ABIA|ACCA|A3T[A-Z0-9])[A-Z0-9]{16}(?![A-Z0-9])"
        ),
        ("akia", "asia", "agpa", "aida", "aroa", "aipa", "anpa", "anva", "abia", "acca", "a3t"),
    ),
    RedactPattern("jwt", re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"), ("eyj",)),
)


class Redactor:
    """Applies the default patterns (unless disabled) and the configured extras, in that order."""

    def __init__(self, extra: Iterable[str | RedactPattern] = (), *, defaults: bool = True) -> None:
        self.patterns: list[RedactPattern] = list(DEFAULT_PATTERNS) if defaults else []
        for i, p in enumerate(extra):
            self.patterns.append(p if isinstance(p, RedactPattern) else compile_pattern(p, f"custom{i}"))
        hints = sorted({h for p in self.patterns for h in p.hints}, key=len, reverse=True)
        # One scan finds which hints occur; a found hint wakes every pattern with a hint inside it (so a
        # longer hint hiding a shorter one at the same place still wakes the shorter one's pattern).
        self._hints = re.compile("|".join(re.escape(h) for h in hints)) if hints else None
        self._wakes = {h: frozenset(i for i, p in enumerate(self.patterns) if any(x in h for x in p.hints))
                       for h in hints}

    def __call__(self, text: str) -> str:
        """Return ``text`` with every secret masked as ``[REDACTED]``."""
        awake: set[int] = set()
        if self._hints is not None:
            for hint in set(self._hints.findall(text.lower())):
                awake |= self._wakes[hint]
        for i, p in enumerate(self.patterns):
            if not p.hints or i in awake:
                text = p.apply(text)
        return text
