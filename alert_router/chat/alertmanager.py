"""A small Alertmanager API v2 client: silences (create, expire, list), alerts and status.

Base URL, timeout, credentials and TLS come from ``chat.alertmanager`` so tests point it at a real
Alertmanager on loopback. Every request has a timeout. Reads and ``DELETE`` (idempotent) are retried
on connection errors, timeouts and 5xx; creating a silence is retried only when the connection could
not be made at all (the request never left), so a retry never creates a second silence. 4xx answers are
final and their message (Alertmanager explains what is wrong) is passed on.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import aiohttp

from alert_router.chat.metrics import ChatMetrics
from alert_router.chat.settings import AlertmanagerApiConfig
from alert_router.configbase import secret
from alert_router.errors import AlertRouterError
from alert_router.matchers import Matcher
from alert_router.scrub import scrub


class AlertmanagerError(AlertRouterError):
    """An Alertmanager API call failed; ``status`` is the HTTP status when there was an answer.

    The message may quote Alertmanager's answer and is shown in chat: it is scrubbed when built.
    """

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = False) -> None:
        self.status = status
        self.retryable = retryable
        super().__init__(scrub(message))


def rfc3339(moment: datetime) -> str:
    """RFC 3339 in UTC with milliseconds, as Alertmanager writes it."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_time(value: str) -> datetime:
    """Parse an RFC 3339 timestamp from the API (Go may write up to nanoseconds)."""
    text = value.strip().replace("Z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:
        digits = "".join(c for c in rest if c.isdigit())
        zone = rest[len(digits):]
        text = f"{head}.{digits[:6].ljust(6, '0')}{zone}"
    return datetime.fromisoformat(text)


@dataclass(frozen=True, slots=True)
class Silence:
    """A silence as the API returns it."""

    id: str
    state: str
    matchers: list[dict[str, Any]]
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str

    @classmethod
    def from_api(cls, obj: Mapping[str, Any]) -> Silence:
        """Build from a ``gettableSilence`` object."""
        return cls(
            id=str(obj["id"]),
            state=str((obj.get("status") or {}).get("state", "")),
            matchers=list(obj.get("matchers") or []),
            starts_at=parse_time(str(obj["startsAt"])),
            ends_at=parse_time(str(obj["endsAt"])),
            created_by=str(obj.get("createdBy", "")),
            comment=str(obj.get("comment", "")),
        )

    def matchers_text(self) -> str:
        """The matchers in Alertmanager's brace syntax."""
        parts = []
        for m in self.matchers:
            op = ("=" if m.get("isEqual", True) else "!=") if not m.get("isRegex") else (
                "=~" if m.get("isEqual", True) else "!~")
            value = str(m.get("value", "")).replace("\\", "\\\\").replace('"', '\\"')
            parts.append(f'{m.get("name")}{op}"{value}"')
        return "{" + ", ".join(parts) + "}"


class AlertmanagerClient:
    """Talks to one Alertmanager (or an HA pair behind one URL) through API v2."""

    def __init__(
        self, cfg: AlertmanagerApiConfig, *, url: str = "", metrics: ChatMetrics | None = None
    ) -> None:
        self.cfg = cfg
        self.url = (cfg.url or url).rstrip("/")
        self.external_url = (cfg.external_url or self.url).rstrip("/")
        self.metrics = metrics
        self._session: aiohttp.ClientSession | None = None

    @property
    def configured(self) -> bool:
        """Whether an API URL is known."""
        return bool(self.url)

    def silence_link(self, silence_id: str) -> str:
        """The Alertmanager UI page of a silence."""
        return f"{self.external_url}/#/silences/{quote(silence_id, safe='')}"

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": "alert-router"}
        token = secret(self.cfg.bearer_token)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            ssl_ctx: ssl.SSLContext | bool = True
            if not self.cfg.verify_tls:
                ssl_ctx = False
            elif self.cfg.ca_file:
                ssl_ctx = ssl.create_default_context(cafile=self.cfg.ca_file)
            auth = None
            if self.cfg.basic_auth is not None:
                auth = aiohttp.BasicAuth(self.cfg.basic_auth.username, secret(self.cfg.basic_auth.password))
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.cfg.timeout),
                headers=self._headers(),
                auth=auth,
                connector=aiohttp.TCPConnector(ssl=ssl_ctx),
            )
        return self._session

    def _count(self, operation: str, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.alertmanager_requests.labels(operation, outcome).inc()

    async def _request(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Sequence[tuple[str, str]] = (),
        idempotent: bool = True,
    ) -> Any:
        if not self.url:
            raise AlertmanagerError("no Alertmanager API URL is configured (chat.alertmanager.url)")
        session = self._get_session()
        attempts = 1 + self.cfg.retries
        delay = 0.2
        for attempt in range(1, attempts + 1):
            try:
                async with session.request(method, f"{self.url}/api/v2{path}", json=json, params=list(params)) as r:
                    text = await r.text()
                    if r.status >= 500:
                        raise AlertmanagerError(
                            f"Alertmanager answered HTTP {r.status}: {_message(text)}", status=r.status, retryable=True
                        )
                    if r.status >= 400:
                        raise AlertmanagerError(
                            f"Alertmanager refused it (HTTP {r.status}): {_message(text)}", status=r.status
                        )
                    self._count(operation, "ok")
                    if not text.strip():
                        return None
                    return await r.json(content_type=None)
            except AlertmanagerError as exc:
                if not (exc.retryable and idempotent and attempt < attempts):
                    self._count(operation, "failed")
                    raise
            except aiohttp.ClientConnectorError as exc:
                # The connection was never made, so the request never left: safe to retry even a POST.
                if attempt >= attempts:
                    self._count(operation, "failed")
                    raise AlertmanagerError(f"Alertmanager unreachable at {self.url}: {exc}", retryable=True) from exc
            except (TimeoutError, aiohttp.ClientError) as exc:
                if not idempotent or attempt >= attempts:
                    self._count(operation, "failed")
                    what = "timed out" if isinstance(exc, TimeoutError) else f"failed: {type(exc).__name__}: {exc}"
                    raise AlertmanagerError(f"Alertmanager request {what}", retryable=True) from exc
            self._count(operation, "retried")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
        raise AssertionError("unreachable")  # pragma: no cover

    async def create_silence(
        self,
        matchers: Sequence[Matcher],
        *,
        starts_at: datetime,
        ends_at: datetime,
        created_by: str,
        comment: str,
    ) -> str:
        """Create a silence and return its id.

        Refused here, before any request, when every matcher matches the empty string (Alertmanager would
        refuse it too) or when it would end before it starts.
        """
        if not matchers:
            raise AlertmanagerError("a silence needs at least one matcher")
        if all(m.matches_empty() for m in matchers):
            raise AlertmanagerError(
                "at least one matcher must not match the empty string (it would silence everything)"
            )
        if ends_at <= starts_at:
            raise AlertmanagerError("a silence must end after it starts")
        body = {
            "matchers": [m.to_silence() for m in matchers],
            "startsAt": rfc3339(starts_at),
            "endsAt": rfc3339(ends_at),
            "createdBy": created_by,
            "comment": comment,
        }
        result = await self._request("create_silence", "POST", "/silences", json=body, idempotent=False)
        if not isinstance(result, dict) or not result.get("silenceID"):
            raise AlertmanagerError(f"unexpected answer to POST /silences: {result!r}")
        return str(result["silenceID"])

    async def expire_silence(self, silence_id: str) -> None:
        """Expire a silence (``DELETE /api/v2/silence/{id}``)."""
        await self._request("expire_silence", "DELETE", f"/silence/{quote(silence_id, safe='')}")

    async def silence(self, silence_id: str) -> Silence:
        """One silence by id."""
        result = await self._request("get_silence", "GET", f"/silence/{quote(silence_id, safe='')}")
        return Silence.from_api(result)

    async def silences(self, filters: Sequence[str] = ()) -> list[Silence]:
        """Silences (every state), optionally filtered by matcher strings."""
        result = await self._request("list_silences", "GET", "/silences", params=[("filter", f) for f in filters])
        return [Silence.from_api(s) for s in result or []]

    async def alerts(self, filters: Sequence[str] = (), *, silenced: bool | None = None) -> list[dict[str, Any]]:
        """Alerts as Alertmanager knows them (``GET /api/v2/alerts``)."""
        params = [("filter", f) for f in filters]
        if silenced is not None:
            params.append(("silenced", "true" if silenced else "false"))
        result = await self._request("list_alerts", "GET", "/alerts", params=params)
        return list(result or [])

    async def status(self) -> dict[str, Any]:
        """``GET /api/v2/status``: version, cluster, uptime."""
        result = await self._request("status", "GET", "/status")
        return dict(result or {})

    async def aclose(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None


def _message(text: str) -> str:
    text = text.strip().strip('"').strip()
    return (text[:300] + "…") if len(text) > 300 else (text or "(no message)")
