"""The ``Authorization`` check shared by ``/webhook``, the API and ``/metrics``: bearer token or basic credentials.

The header is compared as the bytes it arrived as (aiohttp hands header values over as UTF-8 decoded with
``surrogateescape``, so any byte survives the round trip), in constant time. A header that is not text, a
basic value that is not base64, or credentials that are not UTF-8 are simply wrong credentials (401),
never an exception.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass
from typing import Protocol

from pydantic import SecretStr

from alert_router.configbase import secret


class _Basic(Protocol):
    @property
    def username(self) -> str: ...

    @property
    def password(self) -> SecretStr: ...


class AuthSettings(Protocol):
    """A config section with a bearer token and/or basic credentials (``auth``, ``remediation.api_auth``…)."""

    @property
    def bearer_token(self) -> SecretStr | None:
        """The bearer token, if one is configured."""
        ...

    @property
    def basic(self) -> _Basic | None:
        """The basic credentials, if configured."""
        ...


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a caller may present: a bearer token, basic credentials, or both (either is accepted)."""

    bearer_token: str = ""
    username: str = ""
    password: str = ""

    @classmethod
    def of(cls, settings: AuthSettings | None) -> Credentials:
        """The credentials configured in ``settings`` (none for ``None``)."""
        if settings is None:
            return cls()
        basic = settings.basic
        return cls(
            secret(settings.bearer_token),
            basic.username if basic is not None else "",
            secret(basic.password) if basic is not None else "",
        )

    @property
    def configured(self) -> bool:
        """Whether any credential is set (an empty token counts as none)."""
        return bool(self.bearer_token or self.username)

    def check(self, header: str | None) -> str | None:
        """``"bearer"`` or ``"basic:<user>"`` when ``header`` carries these credentials, else ``None``."""
        if not header:
            return None
        raw = header.encode("utf-8", "surrogateescape")
        scheme, _, value = raw.partition(b" ")
        value = value.strip()
        scheme = scheme.lower()
        if scheme == b"bearer" and self.bearer_token:
            return "bearer" if hmac.compare_digest(value, self.bearer_token.encode()) else None
        if scheme == b"basic" and self.username:
            try:
                decoded = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                return None
            user, _, password = decoded.partition(b":")
            user_ok = hmac.compare_digest(user, self.username.encode())
            password_ok = hmac.compare_digest(password, self.password.encode())
            return f"basic:{self.username}" if user_ok & password_ok else None
        return None
