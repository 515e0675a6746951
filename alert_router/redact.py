"""Secret redaction for log lines, applied before a line leaves the service.

Default patterns (each can be turned off as a whole with ``redact.defaults: false``):

* ``bearer`` - ``Bearer <token>`` (HTTP Authorization headers, curl lines);
* ``basic`` - ``Basic <base64>`` authorization headers;
* ``key_value`` - ``password=…``, ``passwd: …``, ``api_key=…``, ``token=…``, ``secret=…``,
  ``access_key=…``, ``client_secret=…`` and their ``"json": "forms"``; the key stays, the value goes;
* ``url_credentials`` - ``scheme://user:password@host``; the password goes;
* ``aws_access_key`` - AWS access key ids (``AKIA…``/``ASIA…`` and the other documented prefixes);
* ``private_key`` - ``-----BEGIN … PRIVATE KEY-----`` blocks (to the END line, or to the end of the
  text when the block was cut);
* ``jwt`` - JSON Web Tokens (``eyJ….eyJ….…``).

Extra patterns are regular expressions from the configuration. When a pattern has a group named
``secret`` only that group is replaced, otherwise the whole match is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["DEFAULT_PATTERNS", "MASK", "RedactPattern", "Redactor", "compile_pattern"]

MASK = "[REDACTED]"


@dataclass(frozen=True)
class RedactPattern:
    """A named regular expression; the ``secret`` group (or the whole match) is masked."""

    name: str
    regex: re.Pattern[str]

    def apply(self, text: str) -> str:
        """Return ``text`` with every match masked."""
        if "secret" in self.regex.groupindex:

            def repl(m: re.Match[str]) -> str:
                start, end = m.span("secret")
                if start < 0:
                    return m.group(0)
                s0 = m.start(0)
                whole = m.group(0)
                return whole[: start - s0] + MASK + whole[end - s0 :]

            return self.regex.sub(repl, text)
        return self.regex.sub(MASK, text)


def compile_pattern(pattern: str, name: str = "custom") -> RedactPattern:
    """Compile a configured pattern; raise ``ValueError`` with a readable message if it is invalid."""
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"invalid redaction pattern {pattern!r}: {exc}") from None
    if regex.fullmatch(""):
        raise ValueError(f"redaction pattern {pattern!r} matches the empty string")
    return RedactPattern(name, regex)


_KEYS = (
    r"(?:[A-Za-z0-9_.-]*?(?:password|passwd|passphrase|pwd|secret|api[_-]?key|apikey|access[_-]?key"
    r"|auth[_-]?token|access[_-]?token|refresh[_-]?token|token|credentials?))"
)

DEFAULT_PATTERNS: tuple[RedactPattern, ...] = (
    RedactPattern(
        "private_key",
        re.compile(
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----.*?(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----|\Z)",
            re.DOTALL,
        ),
    ),
    # A credential has at least one character that is not a lowercase letter ("bearer of bad news" stays).
    RedactPattern(
        "bearer", re.compile(r"\b(?i:bearer)\s+(?P<secret>(?=[a-z._~-]*[A-Z0-9+/])[A-Za-z0-9\-._~+/]{6,}=*)")
    ),
    RedactPattern("basic", re.compile(r"\b(?i:basic)\s+(?P<secret>(?=[a-z]*[A-Z0-9+/])[A-Za-z0-9+/]{8,}={0,2})")),
    RedactPattern("url_credentials", re.compile(r"(?i)\b[a-z][a-z0-9+.-]*://[^\s:/@]+:(?P<secret>[^\s@/]+)@")),
    RedactPattern(
        "key_value",
        re.compile(
            r"(?i)(?<![A-Za-z0-9])[\"']?" + _KEYS + r"[\"']?\s*[=:]\s*(?!\[REDACTED\])"
            r"(?:\"(?P<dq>[^\"]*)\"|'(?P<sq>[^']*)'|(?P<bare>[^\s\"',;&}\]]+))"
        ),
    ),
    RedactPattern(
        "aws_access_key",
        re.compile(
            r"(?<![A-Z0-9])(?:AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|ABIA|ACCA|A3T[A-Z0-9])[A-Z0-9]{16}(?![A-Z0-9])"
        ),
    ),
    RedactPattern("jwt", re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")),
)


def _mask_key_value(m: re.Match[str]) -> str:
    for group in ("dq", "sq", "bare"):
        start, end = m.span(group)
        if start >= 0:
            s0 = m.start(0)
            whole = m.group(0)
            return whole[: start - s0] + MASK + whole[end - s0 :]
    return m.group(0)  # pragma: no cover - one of the groups always matches


class Redactor:
    """Applies the default patterns (unless disabled) and the configured extras, in that order."""

    def __init__(self, extra: Iterable[str | RedactPattern] = (), *, defaults: bool = True) -> None:
        self.patterns: list[RedactPattern] = list(DEFAULT_PATTERNS) if defaults else []
        for i, p in enumerate(extra):
            self.patterns.append(p if isinstance(p, RedactPattern) else compile_pattern(p, f"custom{i}"))

    def __call__(self, text: str) -> str:
        """Return ``text`` with every secret masked as ``[REDACTED]``."""
        for p in self.patterns:
            text = p.regex.sub(_mask_key_value, text) if p.name == "key_value" else p.apply(text)
        return text
