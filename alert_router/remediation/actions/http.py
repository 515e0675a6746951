"""``http``: call an endpoint, such as a pipeline scheduler's trigger API, with auth and retries.

The URL, headers and body are templates. Credentials come from ``bearer_token`` or ``basic_auth``
(each secret may be given as ``*_file``) and never reach the audit log (``Authorization`` is
recorded as ``<redacted>``). Every request carries ``Idempotency-Key: alert-router-<run>-<step>``
so a receiver can drop a repeat. Retried with backoff on 429, 5xx, connection errors and timeouts
(``attempts`` in all); any other status outside ``expect_status`` (default: any 2xx) fails the step.
A dry run records the request and sends nothing.
"""

from __future__ import annotations

import random
import time
from typing import Any, Literal
from urllib.parse import urlsplit

import aiohttp
from pydantic import Field, SecretStr, field_validator
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from alert_router.configbase import ConfigModel
from alert_router.durations import Duration
from alert_router.errors import FailureReason
from alert_router.remediation.actions.base import ActionParams, ActionType, StepContext, StepFailed, StepResult
from alert_router.remediation.templating import TemplateProblem, is_template, render, render_value


class BasicAuth(ConfigModel):
    """HTTP basic credentials."""

    username: str = Field(min_length=1)
    password: SecretStr


class Params(ActionParams):
    """The request: ``url``, ``method``, ``headers``, ``json`` or ``body``, credentials and retry budget."""

    TEMPLATED = ("url", "headers", "json_body", "body")

    action: Literal["http"]
    url: str = Field(min_length=1)
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    headers: dict[str, str] = Field(default_factory=dict)
    json_body: Any = Field(default=None, alias="json")
    body: str | None = None
    bearer_token: SecretStr | None = None
    basic_auth: BasicAuth | None = None
    request_timeout: Duration = Field(default=10.0, gt=0)
    attempts: int = Field(default=3, ge=1, le=10)
    expect_status: list[int] = Field(default_factory=list)
    verify_tls: bool = True

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not is_template(value) and urlsplit(value).scheme not in ("http", "https"):
            raise ValueError(f"url {value!r} must start with http:// or https://")
        return value


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _redacted(headers: dict[str, str]) -> dict[str, str]:
    secret = ("authorization", "x-api-key", "cookie")
    return {k: ("<redacted>" if k.lower() in secret else v) for k, v in headers.items()}


async def run(ctx: StepContext, params: Params) -> StepResult:
    """Render the request, send it with retries (unless dry run), check the status."""
    try:
        url = render(params.url, ctx.variables)
        headers = {k: render(v, ctx.variables) for k, v in params.headers.items()}
        json_body = render_value(params.json_body, ctx.variables) if params.json_body is not None else None
        body = render(params.body, ctx.variables) if params.body is not None else None
    except TemplateProblem as exc:
        raise StepFailed(FailureReason.TEMPLATE, str(exc)) from None
    if urlsplit(url).scheme not in ("http", "https"):
        raise StepFailed(FailureReason.INVALID, f"url {url!r} is not http(s)")
    headers.setdefault("Idempotency-Key", f"alert-router-{ctx.run_id}-{ctx.index}")
    request: dict[str, Any] = {"method": params.method, "url": url, "headers": _redacted(headers)}
    if json_body is not None:
        request["json"] = json_body
    if body is not None:
        request["body"] = body
    if params.bearer_token is not None:
        headers["Authorization"] = f"Bearer {params.bearer_token.get_secret_value()}"
        request["headers"]["Authorization"] = "<redacted>"
    auth = None
    if params.basic_auth is not None:
        auth = aiohttp.BasicAuth(params.basic_auth.username, params.basic_auth.password.get_secret_value())
        request["headers"]["Authorization"] = "<redacted>"
    if ctx.dry_run:
        return StepResult(f"would {params.method} {url}", {"request": {**request, "sent": False}})
    cfg = ctx.retry
    attempts = 0
    started = time.monotonic()

    def wait(state: RetryCallState) -> float:
        exp = min(cfg.max, cfg.initial * (2 ** (state.attempt_number - 1)))
        delay = random.uniform(exp / 2, exp)
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Retryable) and exc.retry_after:
            delay = max(delay, min(exc.retry_after, cfg.max))
        return max(0.0, min(delay, ctx.remaining() - 0.05))

    def stop(state: RetryCallState) -> bool:
        return state.attempt_number >= params.attempts or ctx.remaining() <= 0.1

    timeout = aiohttp.ClientTimeout(total=params.request_timeout)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def once() -> tuple[int, str]:
            nonlocal attempts
            attempts += 1
            try:
                async with session.request(
                    params.method,
                    url,
                    headers=headers,
                    json=json_body,
                    data=body.encode() if body is not None else None,
                    auth=auth,
                    ssl=params.verify_tls,
                    timeout=aiohttp.ClientTimeout(total=max(0.1, min(params.request_timeout, ctx.remaining()))),
                ) as resp:
                    text = await resp.text(errors="replace")
                    if resp.status == 429 or resp.status >= 500:
                        ra = resp.headers.get("Retry-After", "")
                        raise _Retryable(f"{resp.status} {resp.reason}: {text[:200]}",
                                         float(ra) if ra.isdigit() else None)
                    return resp.status, text
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise _Retryable(f"{type(exc).__name__}: {exc}") from None

        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception(lambda e: isinstance(e, _Retryable)),
                stop=stop,
                wait=wait,
                reraise=True,
            ):
                with attempt:
                    status, text = await once()
        except _Retryable as exc:
            request.update(sent=True, attempts=attempts, duration=round(time.monotonic() - started, 3))
            raise StepFailed(FailureReason.SERVER_ERROR, f"{params.method} {url} failed after {attempts} attempt(s): "
                             f"{exc}", {"request": request}) from None
    request.update(sent=True, attempts=attempts, status=status, duration=round(time.monotonic() - started, 3))
    ok = status in params.expect_status if params.expect_status else 200 <= status < 300
    result = {"request": request, "status": status, "response": text[:2000]}
    if not ok:
        reason = FailureReason.AUTH if status in (401, 403) else FailureReason.REJECTED
        raise StepFailed(reason, f"{params.method} {url} answered {status}: {text[:200]}", result)
    return StepResult(f"{params.method} {url} answered {status}", result)


ACTION = ActionType(
    "http",
    Params,
    run,
    "call an HTTP endpoint (e.g. a pipeline scheduler's trigger API) with auth and retries",
    mutating=True,
)
