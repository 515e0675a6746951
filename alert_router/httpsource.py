"""Read-only HTTP data sources behind one set of keys: where they are, who we are to them, how long we wait.

Loki (``enrich.loki``) and Prometheus (``graph.prometheus``) are both queried with a GET that returns JSON,
behind whatever proxy a site puts in front of them. Both are configured with the same keys, defined once
here: ``url``, ``tenant`` (sent as ``X-Scope-OrgID``, which Loki, Mimir, Cortex and Thanos read),
``bearer_token`` or ``basic_auth``, ``tls`` and ``timeout``.

:class:`SourceClient` sends such a GET with those headers, TLS settings and a total timeout, reads at most
16 MiB of the answer and classifies every failure as a :class:`SourceError` carrying a
:class:`~alert_router.errors.FailureReason`. It never retries: the stages that use it are bounded by a
short deadline and degrade instead.
"""

from __future__ import annotations

import base64
import json
import re
import ssl
from collections.abc import Mapping
from typing import Any, Self

import aiohttp
from pydantic import Field, SecretStr, field_validator, model_validator

from alert_router import __version__
from alert_router.configbase import ConfigModel, secret
from alert_router.durations import Duration, check_timeout
from alert_router.errors import AlertRouterError, FailureReason
from alert_router.scrub import scrub
from alert_router.streams import BodyIncomplete, BodyTooLarge, read_capped

__all__ = ["BasicAuth", "SourceClient", "SourceError", "SourceSettings", "TLSOptions", "check_base_url", "ssl_context"]

MAX_RESPONSE_BYTES = 16 * 1024 * 1024


def check_base_url(value: str, key: str, note: str = "") -> str:
    """A configured base URL: empty, or ``http(s)://HOST[:PORT][/PATH]`` without a trailing slash."""
    value = value.strip()
    if value and not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", value):
        raise ValueError(f"{key} must be http(s)://HOST[:PORT][/PATH], got {value!r} {note}".rstrip())
    return value.rstrip("/")


class BasicAuth(ConfigModel):
    """Basic credentials for the proxy in front of a data source."""

    username: str = Field(min_length=1, pattern=r"^[^:]+$")
    password: SecretStr


class TLSOptions(ConfigModel):
    """TLS options for an ``https://`` data source URL."""

    verify: bool = True
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""


class SourceSettings(ConfigModel):
    """Where a read-only HTTP data source answers and how to authenticate to it."""

    url: str = ""
    tenant: str = ""
    bearer_token: SecretStr | None = None
    basic_auth: BasicAuth | None = None
    tls: TLSOptions = TLSOptions()
    timeout: Duration = 2.0

    @property
    def enabled(self) -> bool:
        """Whether a URL is configured."""
        return bool(self.url)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_base_url(value, "url", "(empty disables it)")

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: float) -> float:
        return check_timeout(value)

    @model_validator(mode="after")
    def _one_auth(self) -> Self:
        if self.bearer_token is not None and self.basic_auth is not None:
            raise ValueError("give either bearer_token or basic_auth, not both")
        return self

    def endpoint_key(self) -> tuple[Any, ...]:
        """Everything that makes two settings talk to the same endpoint the same way (for client caches)."""
        basic = (self.basic_auth.username, secret(self.basic_auth.password)) if self.basic_auth else None
        tls = (self.tls.verify, self.tls.ca_file, self.tls.cert_file, self.tls.key_file)
        return (self.url, self.tenant, secret(self.bearer_token), basic, tls, self.timeout)


class SourceError(AlertRouterError):
    """A request failed; ``reason`` is the failure class, ``status`` the HTTP status when there was one.

    The message may quote the source's answer and ends up in notifications: it is scrubbed when built.
    """

    def __init__(self, reason: FailureReason, message: str, status: int | None = None) -> None:
        self.reason = reason
        self.status = status
        super().__init__(scrub(message))


def ssl_context(verify: bool, ca_file: str | None, cert_file: str | None, key_file: str | None) -> ssl.SSLContext:
    """A client TLS context: verifying (against ``ca_file`` when given) unless ``verify`` is false."""
    ctx = ssl.create_default_context(cafile=ca_file or None)
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cert_file:
        ctx.load_cert_chain(cert_file, key_file or None)
    return ctx


def _reason(status: int) -> FailureReason:
    if status in (401, 403):
        return FailureReason.AUTH
    if status == 429:
        return FailureReason.RATE_LIMITED
    if status >= 500:
        return FailureReason.SERVER_ERROR
    return FailureReason.REJECTED


class SourceClient:
    """GETs JSON from one endpoint configured by :class:`SourceSettings`; ``name`` appears in error messages.

    Share one ``aiohttp.ClientSession`` between clients via ``session`` (the client then never closes it).
    """

    def __init__(
        self, name: str, settings: SourceSettings, *, session: aiohttp.ClientSession | None = None
    ) -> None:
        self.name = name
        self.url = settings.url.rstrip("/")
        self.timeout = settings.timeout
        self._own_session = session is None
        self._session = session
        self._headers: dict[str, str] = {"User-Agent": f"alert-router/{__version__}", "Accept": "application/json"}
        if settings.tenant:
            self._headers["X-Scope-OrgID"] = settings.tenant
        if token := secret(settings.bearer_token):
            self._headers["Authorization"] = f"Bearer {token}"
        if settings.basic_auth is not None:
            pair = f"{settings.basic_auth.username}:{secret(settings.basic_auth.password)}"
            self._headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
        self._ssl: ssl.SSLContext | bool = True
        if self.url.startswith("https://"):
            tls = settings.tls
            self._ssl = ssl_context(tls.verify, tls.ca_file or None, tls.cert_file or None, tls.key_file or None)

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def get_json(self, path: str, params: Mapping[str, str]) -> Any:
        """GET ``url + path`` with ``params``; return the parsed JSON body of a 200, or raise :class:`SourceError`.

        The message of an error for a non-200 answer quotes the first 300 characters of the body.
        """
        name = self.name
        try:
            async with self._get_session().get(
                self.url + path,
                params=params,
                headers=self._headers,
                ssl=self._ssl,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                allow_redirects=False,
            ) as resp:
                raw = await read_capped(resp.content, MAX_RESPONSE_BYTES)
                status = resp.status
        except BodyTooLarge:
            raise SourceError(FailureReason.INVALID, f"{name}'s answer is larger than 16 MiB") from None
        except BodyIncomplete as exc:
            raise SourceError(FailureReason.CONNECTION, f"{name}'s answer was cut short: {exc}") from None
        except TimeoutError:
            raise SourceError(FailureReason.TIMEOUT, f"no answer from {name} within {self.timeout:g}s") from None
        except aiohttp.ClientConnectorError as exc:
            raise SourceError(FailureReason.CONNECTION, f"cannot connect to {name}: {exc.os_error or exc}") from None
        except aiohttp.ClientError as exc:
            raise SourceError(
                FailureReason.CONNECTION, f"{name} request failed: {type(exc).__name__}: {exc}"
            ) from None
        if status != 200:
            text = raw.decode("utf-8", "replace").strip().replace("\n", " ")[:300]
            raise SourceError(_reason(status), f"HTTP {status}: {text}" if text else f"HTTP {status}", status)
        try:
            return json.loads(raw)
        except ValueError:
            raise SourceError(FailureReason.INVALID, f"{name}'s answer is not JSON", status) from None

    async def aclose(self) -> None:
        """Close the session if this client created it."""
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None
