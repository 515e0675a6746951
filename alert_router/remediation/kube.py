"""Kubernetes through the official ``kubernetes`` client, off the event loop, with retries that know better.

* :class:`KubeClient` — one per process: builds the client from the in-cluster service account or a
  kubeconfig (and context) named in the config; every blocking call runs in a thread
  (:func:`asyncio.to_thread`) with a request timeout; retries with tenacity on 409 Conflict, 429,
  5xx, connection errors and timeouts, never on 400/401/403/404/422.
* :class:`KubeSession` — one per run: the few typed calls the actions make. It records every
  request (method, path, query, content type, body, outcome). In a dry run, reads still go to the
  cluster when one is configured, and mutating requests are sent with ``dryRun=All`` (server-side
  dry run: authorized, admitted and validated, never persisted), so a plan that would meet a 403
  or a validation error says so; with ``kubernetes.server_dry_run: false``, or without a cluster,
  they are recorded and never sent.

Errors surface as :class:`KubeError` with a :class:`~alert_router.errors.FailureReason`.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from alert_router.errors import AlertRouterError, FailureReason
from alert_router.remediation.settings import KubernetesConfig, RetryConfig
from alert_router.scrub import scrub

log = structlog.get_logger("alert_router.remediation.kube")

SMP = "application/strategic-merge-patch+json"
"""The content type of a strategic merge patch (what ``kubectl patch`` and ``rollout restart`` send)."""

Obj = dict[str, Any]
RequestHook = Callable[[str, str, str], None]
"""Called after each request with (verb, resource, outcome) — outcome is the HTTP status or an error kind."""


class KubeError(AlertRouterError):
    """A Kubernetes request failed: why (:class:`FailureReason`), the HTTP status, and whether to retry.

    The message may quote the API server and is posted back to chat: it is scrubbed when built.
    """

    def __init__(
        self,
        reason: FailureReason,
        message: str,
        *,
        status: int | None = None,
        k8s_reason: str = "",
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(scrub(message))
        self.reason = reason
        self.status = status
        self.k8s_reason = k8s_reason
        self.retryable = retryable
        self.retry_after = retry_after

    def __str__(self) -> str:
        code = f"{self.status} {self.k8s_reason}".strip() if self.status else self.reason.value
        return f"{code}: {self.args[0]}"


class KubeUnavailable(KubeError):
    """No cluster is configured or its configuration cannot be loaded."""

    def __init__(self, message: str) -> None:
        super().__init__(FailureReason.CONNECTION, message)


def classify_status(status: int, body: str | bytes | None, headers: Any = None) -> KubeError:
    """Turn an error response into a :class:`KubeError` (409/429/5xx retryable; 4xx otherwise final)."""
    message, k8s_reason = "", ""
    if body:
        try:
            obj = json.loads(body)
            if isinstance(obj, dict):
                message = str(obj.get("message", ""))
                k8s_reason = str(obj.get("reason", ""))
        except ValueError:
            message = (body.decode("utf-8", "replace") if isinstance(body, bytes) else body)[:300]
    retry_after = None
    if headers is not None:
        value = headers.get("Retry-After") if hasattr(headers, "get") else None
        if value and str(value).isdigit():
            retry_after = float(value)
    message = message or f"HTTP {status}"
    if status in (401, 403):
        return KubeError(FailureReason.AUTH, message, status=status, k8s_reason=k8s_reason)
    if status == 404:
        return KubeError(FailureReason.NOT_FOUND, message, status=status, k8s_reason=k8s_reason)
    if status == 409:
        # AlreadyExists is a fact, not a race: only Conflict (a stale write) is worth another try.
        return KubeError(
            FailureReason.REJECTED, message, status=status, k8s_reason=k8s_reason,
            retryable=k8s_reason != "AlreadyExists",
        )
    if status == 429:
        return KubeError(FailureReason.RATE_LIMITED, message, status=status, k8s_reason=k8s_reason, retryable=True,
                         retry_after=retry_after)
    if status >= 500:
        return KubeError(FailureReason.SERVER_ERROR, message, status=status, k8s_reason=k8s_reason, retryable=True,
                         retry_after=retry_after)
    return KubeError(FailureReason.INVALID, message, status=status, k8s_reason=k8s_reason)


def _classify(exc: BaseException) -> KubeError:
    import urllib3
    from kubernetes.client.exceptions import ApiException

    if isinstance(exc, KubeError):
        return exc
    if isinstance(exc, ApiException):
        return classify_status(int(exc.status or 0), exc.body, exc.headers)
    if isinstance(exc, urllib3.exceptions.NewConnectionError | ConnectionError):  # before TimeoutError: a subclass
        return KubeError(FailureReason.CONNECTION, f"cannot reach the API server: {exc}", retryable=True)
    if isinstance(exc, urllib3.exceptions.TimeoutError | TimeoutError):
        return KubeError(FailureReason.TIMEOUT, f"request timed out: {exc}", retryable=True)
    if isinstance(exc, urllib3.exceptions.HTTPError | OSError):
        return KubeError(FailureReason.CONNECTION, f"cannot reach the API server: {exc}", retryable=True)
    return KubeError(FailureReason.UNKNOWN, f"{type(exc).__name__}: {exc}")


@dataclass
class KubeCall:
    """One request as recorded in the run and the audit log."""

    method: str
    path: str
    body: Any = None
    content_type: str | None = None
    query: dict[str, str] = field(default_factory=dict)
    sent: bool = False
    status: int | None = None
    error: str | None = None
    attempts: int = 0
    duration: float = 0.0
    note: str = ""

    @property
    def mutating(self) -> bool:
        """Whether the request changes the cluster."""
        return self.method in ("POST", "PUT", "PATCH", "DELETE")

    def to_json(self) -> dict[str, Any]:
        """JSON-ready, without empty fields."""
        out: dict[str, Any] = {"method": self.method, "path": self.path, "sent": self.sent}
        if self.query:
            out["query"] = self.query
        if self.content_type:
            out["content_type"] = self.content_type
        if self.body is not None:
            out["body"] = self.body
        for key in ("status", "error", "note"):
            value = getattr(self, key)
            if value:
                out[key] = value
        if self.sent:
            out["attempts"] = self.attempts
            out["duration"] = round(self.duration, 3)
        return out


class KubeClient:
    """The process-wide Kubernetes client (built lazily on first use, closed with :meth:`close`)."""

    def __init__(
        self,
        settings: KubernetesConfig,
        retry: RetryConfig,
        *,
        base_dir: Path | None = None,
        on_request: RequestHook | None = None,
    ) -> None:
        self.settings = settings
        self.retry = retry
        self.base_dir = base_dir
        self.on_request = on_request
        self._api: Any = None
        self._error: KubeUnavailable | None = None
        self._lock = asyncio.Lock()

    def _build(self) -> Any:
        from kubernetes import client
        from kubernetes import config as kube_config

        config: Any = kube_config  # its loaders are untyped
        cfg = client.Configuration()
        in_cluster = self.settings.in_cluster
        if in_cluster is None:
            in_cluster = bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and not self.settings.kubeconfig
        try:
            if in_cluster:
                config.load_incluster_config(client_configuration=cfg)
            else:
                path = self.settings.kubeconfig or None
                if path and self.base_dir is not None and not Path(path).is_absolute():
                    path = str(self.base_dir / path)
                config.load_kube_config(
                    config_file=path,
                    context=self.settings.context or None,
                    client_configuration=cfg,
                    persist_config=False,
                )
        except Exception as exc:  # the loaders raise ConfigException, OSError, yaml errors...
            where = "in-cluster service account" if in_cluster else (self.settings.kubeconfig or "default kubeconfig")
            raise KubeUnavailable(f"cannot load the Kubernetes configuration ({where}): {exc}") from None
        cfg.retries = False  # tenacity owns retries; urllib3 must not retry underneath it
        return client.ApiClient(cfg)

    async def api(self) -> Any:
        """The ``kubernetes.client.ApiClient``; raises :class:`KubeUnavailable` when none can be built."""
        if self._api is not None:
            return self._api
        async with self._lock:
            if self._api is None:
                if self._error is not None:
                    raise self._error
                try:
                    self._api = await asyncio.to_thread(self._build)
                except KubeUnavailable as exc:
                    self._error = exc
                    raise
        return self._api

    async def call(
        self,
        verb: str,
        resource: str,
        fn: Callable[[Any, float], Any],
        *,
        deadline: float,
        record: KubeCall,
        text: bool = False,
    ) -> Obj:
        """Run ``fn(api_client, request_timeout)`` in a thread with retries until ``deadline`` (monotonic).

        ``fn`` must call a typed API method with ``_preload_content=False``; the JSON answer is returned
        as a plain dict (``text``: a plain-text answer, such as a log, as ``{"text": ...}``). ``record``
        is updated with the outcome.
        """
        api = await self.api()
        started = time.monotonic()
        cfg = self.retry

        def stop(state: RetryCallState) -> bool:
            return state.attempt_number >= cfg.attempts or time.monotonic() >= deadline - 0.05

        def wait(state: RetryCallState) -> float:
            exp = min(cfg.max, cfg.initial * (2 ** (state.attempt_number - 1)))
            delay = random.uniform(exp / 2, exp)
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, KubeError) and exc.retry_after:
                delay = max(delay, min(exc.retry_after, cfg.max))
            return max(0.0, min(delay, deadline - time.monotonic() - 0.05))

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.warning("kubernetes request failed; retrying", verb=verb, path=record.path, error=str(exc),
                        attempt=state.attempt_number)

        async def once() -> Obj:
            record.attempts += 1
            timeout = max(0.1, min(self.settings.request_timeout, deadline - time.monotonic()))
            try:
                response = await asyncio.to_thread(fn, api, timeout)
            except BaseException as exc:
                if isinstance(exc, asyncio.CancelledError):
                    raise
                err = _classify(exc)
                record.status = err.status
                self._count(verb, resource, str(err.status or err.reason.value))
                raise err from None
            record.status = int(getattr(response, "status", 200))
            self._count(verb, resource, str(record.status))
            data = response.data
            if text:
                return {"text": data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data or "")}
            return json.loads(data) if data else {}

        record.sent = True
        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception(lambda e: isinstance(e, KubeError) and e.retryable),
                stop=stop,
                wait=wait,
                before_sleep=before_sleep,
                reraise=True,
            ):
                with attempt:
                    result = await once()
                    return result
        except KubeError as exc:
            record.error = str(exc)
            raise
        finally:
            record.duration = time.monotonic() - started
        raise AssertionError("unreachable")  # pragma: no cover

    def _count(self, verb: str, resource: str, outcome: str) -> None:
        if self.on_request is not None:
            self.on_request(verb, resource, outcome)

    def close(self) -> None:
        """Release the client's connection pool."""
        if self._api is not None:
            self._api.close()
            self._api = None


def _path(group: str, namespace: str, plural: str, name: str | None = None, sub: str | None = None) -> str:
    base = f"/api/{group}" if group == "v1" else f"/apis/{group}"
    path = f"{base}/namespaces/{namespace}/{plural}"
    if name:
        path += f"/{name}"
    if sub:
        path += f"/{sub}"
    return path


ApiFn = Callable[[Any, float, dict[str, Any]], Any]
"""``fn(api_client, request_timeout, options)``: one typed client call; ``options`` (``dry_run``) go to the call."""

JSON_PATCH = "application/json-patch+json"
"""The content type of an RFC 6902 JSON patch (what ``kubectl rollout undo`` sends)."""


def label_selector(selector: Mapping[str, Any] | None) -> str:
    """A ``metav1.LabelSelector`` as the query string the API accepts (``app=x,tier in (a,b)``)."""
    selector = selector or {}
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key", ""), expr.get("operator", ""), expr.get("values") or []
        if op == "In":
            parts.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            parts.append(key)
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)


class KubeSession:
    """One run's Kubernetes calls; see the module docstring for the dry-run rule.

    ``server_dry_run`` (with ``dry_run``): mutating requests are sent with ``dryRun=All`` when a
    cluster is configured, so the API server authorizes, admits and validates them and changes
    nothing; its answer (status or error) is recorded, and an error fails the step as it would in a
    real run. Mutating calls return ``None`` in every dry run, so actions say "would ...".
    """

    def __init__(
        self,
        client: KubeClient | None,
        *,
        dry_run: bool,
        deadline: float = float("inf"),
        server_dry_run: bool = True,
    ) -> None:
        self.client = client
        self.dry_run = dry_run
        self.server_dry_run = server_dry_run
        self.deadline = deadline
        self.calls: list[KubeCall] = []

    def take_calls(self) -> list[KubeCall]:
        """The calls recorded since the last time, and forget them."""
        calls, self.calls = self.calls, []
        return calls

    async def _do(self, verb: str, resource: str, record: KubeCall, fn: ApiFn, *, text: bool = False) -> Obj | None:
        self.calls.append(record)
        if record.mutating and self.dry_run and not self.server_dry_run:
            record.note = "dry run: not sent"
            return None
        if self.client is None:
            if self.dry_run:
                record.note = "dry run: no cluster configured, not sent"
                return None
            raise KubeUnavailable("no Kubernetes client is configured")
        options: dict[str, Any] = {}
        if record.mutating and self.dry_run:
            options["dry_run"] = "All"
            record.query["dryRun"] = "All"
        try:
            answer = await self.client.call(
                verb, resource, lambda api, t: fn(api, t, options), deadline=self.deadline, record=record, text=text
            )
        except KubeUnavailable as exc:
            if self.dry_run:
                record.sent = False
                record.query.pop("dryRun", None)
                record.note = f"dry run: {exc.args[0]}; not sent"
                return None
            raise
        except KubeError:
            if options:
                record.note = "dry run: sent with dryRun=All; the API server refused it"
            raise
        if options:
            record.note = "dry run: sent with dryRun=All; the API server accepted it and changed nothing"
            return None
        return answer

    # -- apps/v1 deployments, replicasets and statefulsets ---------------------------------------

    async def read_deployment(self, namespace: str, name: str) -> Obj | None:
        """GET a Deployment (``None`` only in a dry run without a cluster)."""
        from kubernetes import client

        return await self._do(
            "get", "deployments", KubeCall("GET", _path("apps/v1", namespace, "deployments", name)),
            lambda api, t, o: client.AppsV1Api(api).read_namespaced_deployment(
                name, namespace, _preload_content=False, _request_timeout=t
            ),
        )

    async def patch_deployment(self, namespace: str, name: str, body: Obj) -> Obj | None:
        """Strategic-merge PATCH a Deployment (``None`` in a dry run)."""
        from kubernetes import client

        return await self._do(
            "patch", "deployments",
            KubeCall("PATCH", _path("apps/v1", namespace, "deployments", name), body, SMP),
            lambda api, t, o: client.AppsV1Api(api).patch_namespaced_deployment(
                name, namespace, body, _preload_content=False, _request_timeout=t, _content_type=SMP, **o
            ),
        )

    async def json_patch_deployment(self, namespace: str, name: str, body: list[Obj]) -> Obj | None:
        """JSON-patch (RFC 6902) a Deployment, as ``kubectl rollout undo`` does (``None`` in a dry run)."""
        from kubernetes import client

        return await self._do(
            "patch", "deployments",
            KubeCall("PATCH", _path("apps/v1", namespace, "deployments", name), body, JSON_PATCH),
            lambda api, t, o: client.AppsV1Api(api).patch_namespaced_deployment(
                name, namespace, body, _preload_content=False, _request_timeout=t, _content_type=JSON_PATCH, **o
            ),
        )

    async def read_scale(self, namespace: str, name: str) -> Obj | None:
        """GET a Deployment's ``scale`` subresource."""
        from kubernetes import client

        return await self._do(
            "get", "deployments/scale", KubeCall("GET", _path("apps/v1", namespace, "deployments", name, "scale")),
            lambda api, t, o: client.AppsV1Api(api).read_namespaced_deployment_scale(
                name, namespace, _preload_content=False, _request_timeout=t
            ),
        )

    async def patch_scale(self, namespace: str, name: str, body: Obj) -> Obj | None:
        """Strategic-merge PATCH a Deployment's ``scale`` subresource (what ``kubectl scale`` amounts to)."""
        from kubernetes import client

        return await self._do(
            "patch", "deployments/scale",
            KubeCall("PATCH", _path("apps/v1", namespace, "deployments", name, "scale"), body, SMP),
            lambda api, t, o: client.AppsV1Api(api).patch_namespaced_deployment_scale(
                name, namespace, body, _preload_content=False, _request_timeout=t, _content_type=SMP, **o
            ),
        )

    async def list_replicasets(self, namespace: str, *, label_selector: str = "") -> Obj | None:
        """LIST ReplicaSets (a Deployment's revisions), by label selector."""
        from kubernetes import client

        query = {"labelSelector": label_selector} if label_selector else {}
        return await self._do(
            "list", "replicasets", KubeCall("GET", _path("apps/v1", namespace, "replicasets"), query=query),
            lambda api, t, o: client.AppsV1Api(api).list_namespaced_replica_set(
                namespace, label_selector=label_selector or None, _preload_content=False, _request_timeout=t
            ),
        )

    async def read_statefulset(self, namespace: str, name: str) -> Obj | None:
        """GET a StatefulSet."""
        from kubernetes import client

        return await self._do(
            "get", "statefulsets", KubeCall("GET", _path("apps/v1", namespace, "statefulsets", name)),
            lambda api, t, o: client.AppsV1Api(api).read_namespaced_stateful_set(
                name, namespace, _preload_content=False, _request_timeout=t
            ),
        )

    async def patch_statefulset(self, namespace: str, name: str, body: Obj) -> Obj | None:
        """Strategic-merge PATCH a StatefulSet (``None`` in a dry run)."""
        from kubernetes import client

        return await self._do(
            "patch", "statefulsets",
            KubeCall("PATCH", _path("apps/v1", namespace, "statefulsets", name), body, SMP),
            lambda api, t, o: client.AppsV1Api(api).patch_namespaced_stateful_set(
                name, namespace, body, _preload_content=False, _request_timeout=t, _content_type=SMP, **o
            ),
        )

    async def read_statefulset_scale(self, namespace: str, name: str) -> Obj | None:
        """GET a StatefulSet's ``scale`` subresource."""
        from kubernetes import client

        return await self._do(
            "get", "statefulsets/scale",
            KubeCall("GET", _path("apps/v1", namespace, "statefulsets", name, "scale")),
            lambda api, t, o: client.AppsV1Api(api).read_namespaced_stateful_set_scale(
                name, namespace, _preload_content=False, _request_timeout=t
            ),
        )

    async def patch_statefulset_scale(self, namespace: str, name: str, body: Obj) -> Obj | None:
        """Strategic-merge PATCH a StatefulSet's ``scale`` subresource."""
        from kubernetes import client

        return await self._do(
            "patch", "statefulsets/scale",
            KubeCall("PATCH", _path("apps/v1", namespace, "statefulsets", name, "scale"), body, SMP),
            lambda api, t, o: client.AppsV1Api(api).patch_namespaced_stateful_set_scale(
                name, namespace, body, _preload_content=False, _request_timeout=t, _content_type=SMP, **o
            ),
        )

    # -- autoscaling/v2 horizontalpodautoscalers -------------------------------------------------

    async def list_hpas(self, namespace: str) -> Obj | None:
        """LIST HorizontalPodAutoscalers (to find the one whose ``scaleTargetRef`` is the target)."""
        from kubernetes import client

        return await self._do(
            "list", "horizontalpodautoscalers",
            KubeCall("GET", _path("autoscaling/v2", namespace, "horizontalpodautoscalers")),
            lambda api, t, o: client.AutoscalingV2Api(api).list_namespaced_horizontal_pod_autoscaler(
                namespace, _preload_content=False, _request_timeout=t
            ),
        )

    async def patch_hpa(self, namespace: str, name: str, body: Obj) -> Obj | None:
        """Merge-PATCH a HorizontalPodAutoscaler (``None`` in a dry run)."""
        from kubernetes import client

        merge = "application/merge-patch+json"
        return await self._do(
            "patch", "horizontalpodautoscalers",
            KubeCall("PATCH", _path("autoscaling/v2", namespace, "horizontalpodautoscalers", name), body, merge),
            lambda api, t, o: client.AutoscalingV2Api(api).patch_namespaced_horizontal_pod_autoscaler(
                name, namespace, body, _preload_content=False, _request_timeout=t, _content_type=merge, **o
            ),
        )

    # -- core/v1 pods and events -----------------------------------------------------------------

    async def list_pods(self, namespace: str, *, field_selector: str = "", label_selector: str = "") -> Obj | None:
        """LIST Pods (the remediator's RBAC has list, not get)."""
        from kubernetes import client

        query = {k: v for k, v in (("fieldSelector", field_selector), ("labelSelector", label_selector)) if v}
        return await self._do(
            "list", "pods", KubeCall("GET", _path("v1", namespace, "pods"), query=query),
            lambda api, t, o: client.CoreV1Api(api).list_namespaced_pod(
                namespace,
                field_selector=field_selector or None,
                label_selector=label_selector or None,
                _preload_content=False,
                _request_timeout=t,
            ),
        )

    async def read_pod_log(
        self, namespace: str, name: str, *, container: str = "", previous: bool = False, tail_lines: int = 0
    ) -> Obj | None:
        """GET a container's log (``previous``: of the container that ran before the current one).

        Answers ``{"text": ...}``. A log that does not exist (no previous container) is a 400.
        """
        from kubernetes import client

        query = {k: v for k, v in (("container", container), ("previous", "true" if previous else ""),
                                   ("tailLines", str(tail_lines) if tail_lines else "")) if v}
        return await self._do(
            "get", "pods/log", KubeCall("GET", _path("v1", namespace, "pods", name, "log"), query=query),
            lambda api, t, o: client.CoreV1Api(api).read_namespaced_pod_log(
                name, namespace, container=container or None, previous=previous or None,
                tail_lines=tail_lines or None, _preload_content=False, _request_timeout=t,
            ),
            text=True,
        )

    async def list_events(self, namespace: str, *, field_selector: str = "") -> Obj | None:
        """LIST core/v1 Events (``fieldSelector=involvedObject.name=NAME,...``, as ``kubectl describe`` does)."""
        from kubernetes import client

        query = {"fieldSelector": field_selector} if field_selector else {}
        return await self._do(
            "list", "events", KubeCall("GET", _path("v1", namespace, "events"), query=query),
            lambda api, t, o: client.CoreV1Api(api).list_namespaced_event(
                namespace, field_selector=field_selector or None, _preload_content=False, _request_timeout=t
            ),
        )

    async def delete_pod(self, namespace: str, name: str, grace_period_seconds: int | None = None) -> Obj | None:
        """DELETE a Pod."""
        from kubernetes import client

        body = {"gracePeriodSeconds": grace_period_seconds} if grace_period_seconds is not None else None
        return await self._do(
            "delete", "pods", KubeCall("DELETE", _path("v1", namespace, "pods", name), body, "application/json"),
            lambda api, t, o: client.CoreV1Api(api).delete_namespaced_pod(
                name, namespace, body=cast(Any, body), _preload_content=False, _request_timeout=t, **o
            ),
        )

    # -- batch/v1 cronjobs and jobs --------------------------------------------------------------

    async def read_cronjob(self, namespace: str, name: str) -> Obj | None:
        """GET a CronJob."""
        from kubernetes import client

        return await self._do(
            "get", "cronjobs", KubeCall("GET", _path("batch/v1", namespace, "cronjobs", name)),
            lambda api, t, o: client.BatchV1Api(api).read_namespaced_cron_job(
                name, namespace, _preload_content=False, _request_timeout=t
            ),
        )

    async def create_job(self, namespace: str, body: Obj) -> Obj | None:
        """POST a Job."""
        from kubernetes import client

        return await self._do(
            "create", "jobs", KubeCall("POST", _path("batch/v1", namespace, "jobs"), body, "application/json"),
            lambda api, t, o: client.BatchV1Api(api).create_namespaced_job(
                namespace, cast(Any, body), _preload_content=False, _request_timeout=t, **o
            ),
        )

    async def read_job(self, namespace: str, name: str) -> Obj | None:
        """GET a Job."""
        from kubernetes import client

        return await self._do(
            "get", "jobs", KubeCall("GET", _path("batch/v1", namespace, "jobs", name)),
            lambda api, t, o: client.BatchV1Api(api).read_namespaced_job(
                name, namespace, _preload_content=False, _request_timeout=t
            ),
        )
