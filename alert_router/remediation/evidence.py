"""Evidence: what the Kubernetes API says about a workload, gathered before anything changes it.

One bounded round of reads (``timeout``, 5 s by default; requests run in parallel, at most
``max_concurrency`` at once, each off the event loop in the client's threads):

1. the workload (Deployment, StatefulSet or Pod); alongside, not waiting for each other, the
   events about it (``involvedObject``), the namespace's warning events (kept only when they are
   about the workload, its ReplicaSets or pods) and the HorizontalPodAutoscaler that owns its replicas;
2. then its pods (its selector) and, for a Deployment, its ReplicaSets (the revisions: the
   ReplicaSets it controls, by ``deployment.kubernetes.io/revision``, as ``kubectl rollout
   history`` reads them);
3. then the last ``log_lines`` lines of the previous container of up to ``max_logs`` crash-looping
   pods (``pods/log?previous=true``), redacted like Loki lines: a restart destroys this evidence.

A part that fails or does not finish in time is named in ``errors`` and the rest is kept
(``status: partial``); nothing here raises. The result is a JSON-ready dict whose ``summary`` is one
line for people, e.g. ``3/3 pods CrashLoopBackOff, OOMKilled, rolled out 12 minutes ago (image
model:v42)``, and whose ``last_rollout_age`` (seconds, or ``None``) runbook conditions can test.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator

from alert_router.configbase import ConfigModel
from alert_router.durations import Duration, check_timeout
from alert_router.remediation.actions.base import Target
from alert_router.remediation.kube import KubeClient, KubeError, KubeSession, label_selector

if TYPE_CHECKING:
    from alert_router.redact import Redactor

__all__ = [
    "EVIDENCE_KINDS",
    "EvidenceSettings",
    "gather",
    "gather_with",
    "humanize_age",
    "planned_requests",
    "summarize",
]

SESSION_GRACE = 0.5
"""Seconds a gathering session's deadline runs past the evidence timeout (so the timeout decides first)."""

EVIDENCE_KINDS = frozenset({"Deployment", "StatefulSet", "Pod"})
"""Target kinds evidence can be gathered for."""

REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
CHANGE_CAUSE = "kubernetes.io/change-cause"
ELLIPSIS = "…"

Obj = dict[str, Any]


class EvidenceSettings(ConfigModel):
    """How much evidence to gather and how long to wait for it."""

    enabled: bool = True
    timeout: Duration = 5.0
    log_lines: int = Field(default=20, ge=0, le=500)
    max_pods: int = Field(default=10, ge=1, le=100)
    max_events: int = Field(default=15, ge=0, le=200)
    max_logs: int = Field(default=3, ge=0, le=20)
    max_line_chars: int = Field(default=300, ge=20, le=10_000)
    max_concurrency: int = Field(default=4, ge=1, le=32)

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: float) -> float:
        return check_timeout(value)


def _ts(value: Any) -> float | None:
    """RFC 3339 (``2026-11-27T00:00:00Z``, with or without fractions) to epoch seconds."""
    if not value or not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def humanize_age(seconds: float) -> str:
    """``45 seconds``, ``12 minutes``, ``5 hours``, ``3 days`` (as people say it)."""
    s = max(0.0, seconds)
    for size, unit, limit in ((1, "second", 90), (60, "minute", 90 * 60), (3600, "hour", 48 * 3600)):
        if s < limit:
            n = round(s / size)
            return f"{n} {unit}{'' if n == 1 else 's'}"
    n = round(s / 86400)
    return f"{n} day{'' if n == 1 else 's'}"


def _short_image(image: str) -> str:
    """``registry.example/team/model:v42`` -> ``model:v42`` (the name people say)."""
    return image.rsplit("/", 1)[-1]


def _images(template: Mapping[str, Any] | None) -> list[str]:
    containers = ((template or {}).get("spec") or {}).get("containers") or []
    return [str(c.get("image", "")) for c in containers if isinstance(c, Mapping)]


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + ELLIPSIS


def _controlled_by(obj: Mapping[str, Any], uid: str) -> bool:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(r.get("controller") and r.get("uid") == uid for r in refs)


# -- what one object says ---------------------------------------------------------------------------


def pod_state(pod: Mapping[str, Any]) -> str:
    """The pod's state as ``kubectl get pods`` shows it in STATUS (``CrashLoopBackOff``, ``Running``...)."""
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    if meta.get("deletionTimestamp"):
        return "Terminating"
    reason = str(status.get("reason") or status.get("phase") or "Unknown")
    for c in status.get("containerStatuses") or []:
        state = c.get("state") or {}
        if (state.get("waiting") or {}).get("reason"):
            reason = str(state["waiting"]["reason"])
        elif state.get("terminated"):
            term = state["terminated"]
            reason = str(term.get("reason") or f"ExitCode:{term.get('exitCode', '?')}")
    return reason


def _pod(pod: Mapping[str, Any], now: float) -> Obj:
    meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    statuses = [c for c in status.get("containerStatuses") or [] if isinstance(c, Mapping)]
    total = len(spec.get("containers") or statuses) or len(statuses)
    last: Obj | None = None
    for c in statuses:
        term = (c.get("lastState") or {}).get("terminated")
        if not term:
            continue
        finished = _ts(term.get("finishedAt")) or 0.0
        if last is None or finished >= (_ts(last.get("finished_at")) or 0.0):
            last = {"container": c.get("name", ""), "reason": term.get("reason") or "",
                    "exit_code": term.get("exitCode"), "finished_at": term.get("finishedAt")}
    created = _ts(meta.get("creationTimestamp"))
    return {
        "name": meta.get("name", ""),
        "phase": status.get("phase", ""),
        "state": pod_state(pod),
        "ready": f"{sum(1 for c in statuses if c.get('ready'))}/{total}",
        "all_ready": bool(statuses) and all(c.get("ready") for c in statuses),
        "restarts": sum(int(c.get("restartCount") or 0) for c in statuses),
        "last_termination": last,
        "node": spec.get("nodeName", ""),
        "images": [_short_image(i) for i in _images({"spec": spec})],
        "age": round(now - created, 1) if created else None,
    }


def _conditions(status: Mapping[str, Any]) -> list[Obj]:
    return [
        {k: c.get(k) for k in ("type", "status", "reason", "message", "lastUpdateTime", "lastTransitionTime")
         if c.get(k) is not None}
        for c in status.get("conditions") or []
        if isinstance(c, Mapping)
    ]


def _revision(rs: Mapping[str, Any], now: float) -> Obj:
    meta = rs.get("metadata") or {}
    ann = meta.get("annotations") or {}
    created = _ts(meta.get("creationTimestamp"))
    status = rs.get("status") or {}
    return {
        "revision": int(ann.get(REVISION, "0") or 0),
        "replicaset": meta.get("name", ""),
        "images": [_short_image(i) for i in _images((rs.get("spec") or {}).get("template"))],
        "change_cause": ann.get(CHANGE_CAUSE, ""),
        "created": meta.get("creationTimestamp"),
        "age": round(now - created, 1) if created else None,
        "replicas": int((rs.get("spec") or {}).get("replicas") or 0),
        "ready": int(status.get("readyReplicas") or 0),
        "reused": bool(ann.get(REVISION_HISTORY)),
    }


def _rollout_time(dep: Mapping[str, Any], current: Mapping[str, Any] | None) -> float | None:
    """When the current revision was rolled out: its ReplicaSet's creation.

    A rollback reuses an older ReplicaSet (it then carries ``revision-history``); its creation says
    nothing about the rollback, so the Progressing condition's last update naming that ReplicaSet
    is used instead.
    """
    if current is None:
        return None
    meta = current.get("metadata") or {}
    created = _ts(meta.get("creationTimestamp"))
    if (meta.get("annotations") or {}).get(REVISION_HISTORY):
        for c in (dep.get("status") or {}).get("conditions") or []:
            if c.get("type") == "Progressing" and f'"{meta.get("name")}"' in str(c.get("message", "")):
                return _ts(c.get("lastUpdateTime")) or created
    return created


# -- gathering ------------------------------------------------------------------------------------------


class _Gathering:
    """The state of one gathering round: what came back, what failed, what is still missing."""

    def __init__(self, session: KubeSession, target: Target, settings: EvidenceSettings, redactor: Redactor,
                 now: float) -> None:
        self.session = session
        self.target = target
        self.settings = settings
        self.redactor = redactor
        self.now = now
        self.sem = asyncio.Semaphore(settings.max_concurrency)
        self.workload: Obj | None = None
        self.pods: list[Obj] | None = None
        self.replicasets: list[Obj] | None = None
        self.events: list[Obj] = []
        self.warnings: list[Obj] | None = None
        self.hpa: Obj | None = None
        self.logs: list[Obj] = []
        self.errors: list[Obj] = []
        self.pending: Counter[str] = Counter()  # reads started and not answered (a timeout leaves them here)

    async def part(self, name: str, fn: Callable[[], Awaitable[Any]]) -> Any:
        """Run one read; on failure record it under ``name`` and return ``None``."""
        self.pending[name] += 1
        try:
            async with self.sem:
                result = await fn()
        except KubeError as exc:
            self.pending[name] -= 1
            self.errors.append({"part": name, "error": str(exc)})
            return None
        self.pending[name] -= 1
        return result

    async def run(self) -> None:
        """The workload, then its pods and revisions, then previous logs; events and the HPA alongside.

        The independent reads do not wait for each other, so a stalled endpoint costs only its part.
        """
        t = self.target
        side: list[Awaitable[Any]] = [self._events(f"involvedObject.kind={t.kind},involvedObject.name={t.name}")]
        if t.kind != "Pod":
            side += [self._warnings(), self._hpa()]
        await asyncio.gather(self._workload_chain(), *side)

    async def _workload_chain(self) -> None:
        t = self.target
        await self._read_workload()
        if self.workload is None:
            return
        if t.kind == "Pod":
            self.pods = [self.workload]
        else:
            selector = label_selector((self.workload.get("spec") or {}).get("selector"))
            second: list[Awaitable[Any]] = [self._pods(selector)]
            if t.kind == "Deployment":
                second.append(self._replicasets(selector))
            await asyncio.gather(*second)
        await asyncio.gather(*(self._previous_log(p, c) for p, c in self._crashed()))

    async def _read_workload(self) -> None:
        t = self.target
        if t.kind == "Deployment":
            self.workload = await self.part("workload", lambda: self.session.read_deployment(t.namespace, t.name))
        elif t.kind == "StatefulSet":
            self.workload = await self.part("workload", lambda: self.session.read_statefulset(t.namespace, t.name))
        else:
            listed = await self.part(
                "workload", lambda: self.session.list_pods(t.namespace, field_selector=f"metadata.name={t.name}")
            )
            items = (listed or {}).get("items") or []
            if listed is not None and not items:
                self.errors.append({"part": "workload", "error": f"404 NotFound: pod {t.name!r} not found"})
            self.workload = items[0] if items else None

    async def _events(self, selector: str) -> None:
        got = await self.part("events", lambda: self.session.list_events(self.target.namespace,
                                                                         field_selector=selector))
        self.events += (got or {}).get("items") or []

    async def _warnings(self) -> None:
        got = await self.part("events", lambda: self.session.list_events(self.target.namespace,
                                                                         field_selector="type=Warning"))
        self.warnings = (got or {}).get("items") or [] if got is not None else None

    async def _hpa(self) -> None:
        got = await self.part("hpa", lambda: self.session.list_hpas(self.target.namespace))
        for h in (got or {}).get("items") or []:
            ref = (h.get("spec") or {}).get("scaleTargetRef") or {}
            if ref.get("kind") == self.target.kind and ref.get("name") == self.target.name:
                self.hpa = h
                return

    async def _pods(self, selector: str) -> None:
        got = await self.part("pods", lambda: self.session.list_pods(self.target.namespace, label_selector=selector))
        if got is not None:
            items = got.get("items") or []
            if self.target.kind == "StatefulSet" and self.workload is not None:  # pods it controls, as kubectl
                uid = str((self.workload.get("metadata") or {}).get("uid", ""))
                items = [p for p in items if _controlled_by(p, uid)]
            self.pods = items

    async def _replicasets(self, selector: str) -> None:
        got = await self.part("revisions", lambda: self.session.list_replicasets(self.target.namespace,
                                                                                 label_selector=selector))
        if got is not None and self.workload is not None:
            uid = str((self.workload.get("metadata") or {}).get("uid", ""))
            self.replicasets = [rs for rs in got.get("items") or [] if _controlled_by(rs, uid)]

    def _crashed(self) -> list[tuple[Obj, str]]:
        """(pod, container) pairs whose previous container terminated, problem pods first."""
        out: list[tuple[int, Obj, str]] = []
        for p in self.pods or []:
            for c in (p.get("status") or {}).get("containerStatuses") or []:
                if (c.get("lastState") or {}).get("terminated") and int(c.get("restartCount") or 0) > 0:
                    out.append((0 if not c.get("ready") else 1, p, str(c.get("name", ""))))
                    break
        out.sort(key=lambda x: x[0])
        if self.settings.log_lines == 0:
            return []
        return [(p, c) for _, p, c in out[: self.settings.max_logs]]

    async def _previous_log(self, pod: Obj, container: str) -> None:
        name = str((pod.get("metadata") or {}).get("name", ""))
        entry: Obj = {"pod": name, "container": container, "status": "ok", "reason": None, "lines": []}
        self.logs.append(entry)
        self.pending["logs"] += 1
        entry.update(status="unavailable", reason="timeout")  # until it is answered
        try:
            async with self.sem:
                got = await self.session.read_pod_log(
                    self.target.namespace, name, container=container, previous=True,
                    tail_lines=self.settings.log_lines,
                )
        except KubeError as exc:
            self.pending["logs"] -= 1
            entry.update(status="unavailable", reason=str(exc))
            return
        self.pending["logs"] -= 1
        entry.update(status="ok", reason=None)
        text = str((got or {}).get("text", ""))
        lines = [ln for ln in text.splitlines() if ln.strip()][-self.settings.log_lines :]
        entry["lines"] = [_clip(self.redactor(ln), self.settings.max_line_chars) for ln in lines]
        if not lines:
            entry.update(status="empty", reason="the previous container wrote no log lines")

    # -- the result -------------------------------------------------------------------------------

    def result(self, timed_out: bool, duration: float) -> Obj:
        t = self.target
        out: Obj = {"target": f"{t.kind}/{t.namespace}/{t.name}", "gathered_at": _iso(self.now),
                    "duration": round(duration, 3)}
        errors = list(self.errors)
        if timed_out:
            missing = sorted(k for k, n in self.pending.items() if n > 0) or ["the rest"]
            errors.append({"part": ",".join(missing),
                           "error": f"timeout: not answered within {self.settings.timeout:g}s"})
        out["errors"] = errors
        if self.workload is None:
            why = next((e["error"] for e in errors if "workload" in e["part"].split(",")),
                       errors[0]["error"] if errors else "no answer")
            out.update(status="unavailable", reason=why, summary=f"evidence unavailable: {why}",
                       last_rollout_age=None, pods=[], events=[], previous_logs=[])
            return out
        pods_all = [_pod(p, self.now) for p in self.pods or []]
        pods_all.sort(key=lambda p: (p["all_ready"] and p["state"] == "Running", p["name"]))
        out["workload"] = self._workload()
        out.update(self._revisions())
        if self.hpa is not None:
            hs = self.hpa.get("spec") or {}
            hst = self.hpa.get("status") or {}
            out["hpa"] = {"name": (self.hpa.get("metadata") or {}).get("name"),
                          "min_replicas": hs.get("minReplicas", 1), "max_replicas": hs.get("maxReplicas"),
                          "current_replicas": hst.get("currentReplicas"),
                          "desired_replicas": hst.get("desiredReplicas")}
        out["pods_total"] = len(pods_all) if self.pods is not None else None
        out["pods"] = pods_all[: self.settings.max_pods]
        out["events"] = self._events_out()
        out["previous_logs"] = self.logs
        out["status"] = "partial" if errors else "ok"
        out["reason"] = "; ".join(f"{e['part']}: {e['error']}" for e in errors) or None
        out["summary"] = summarize(out, pods_all)
        return out

    def _workload(self) -> Obj:
        w = self.workload or {}
        meta, spec, status = w.get("metadata") or {}, w.get("spec") or {}, w.get("status") or {}
        if self.target.kind == "Pod":
            return {"kind": "Pod", "name": meta.get("name"), "phase": status.get("phase"),
                    "conditions": _conditions(status)}
        out: Obj = {
            "kind": self.target.kind,
            "name": meta.get("name"),
            "generation": meta.get("generation"),
            "observed_generation": status.get("observedGeneration"),
            "replicas": {
                "desired": int(spec.get("replicas", 1) if spec.get("replicas") is not None else 1),
                "updated": int(status.get("updatedReplicas") or 0),
                "ready": int(status.get("readyReplicas") or 0),
                "available": int(status.get("availableReplicas") or 0),
            },
            "images": [_short_image(i) for i in _images(spec.get("template"))],
            "conditions": _conditions(status),
        }
        if self.target.kind == "Deployment":
            out["paused"] = bool(spec.get("paused"))
            out["revision"] = int((meta.get("annotations") or {}).get(REVISION, "0") or 0)
        else:
            out["current_revision"] = status.get("currentRevision")
            out["update_revision"] = status.get("updateRevision")
        return out

    def _revisions(self) -> Obj:
        if self.target.kind != "Deployment" or self.workload is None:
            return {"last_rollout_at": None, "last_rollout_age": None}
        if self.replicasets is None:
            return {"revisions": None, "last_rollout_at": None, "last_rollout_age": None}
        ann = (self.workload.get("metadata") or {}).get("annotations") or {}
        ordered = sorted(self.replicasets, key=lambda rs: -int(
            ((rs.get("metadata") or {}).get("annotations") or {}).get(REVISION, "0") or 0))
        want = ann.get(REVISION)
        current = next((rs for rs in ordered if ((rs.get("metadata") or {}).get("annotations") or {}).get(REVISION)
                        == want), ordered[0] if ordered else None)
        revisions = [_revision(rs, self.now) for rs in ordered]
        when = _rollout_time(self.workload, current)
        cur = _revision(current, self.now) if current is not None else None
        previous = next((r for r in revisions if cur is not None and r["revision"] < cur["revision"]), None)
        return {
            "revisions": revisions[:5],
            "current_revision": cur,
            "previous_revision": previous,
            "last_rollout_at": _iso(when) if when else None,
            "last_rollout_age": round(self.now - when, 1) if when else None,
        }

    def _events_out(self) -> list[Obj]:
        names = {self.target.name}
        names |= {str((p.get("metadata") or {}).get("name", "")) for p in self.pods or []}
        names |= {str((rs.get("metadata") or {}).get("name", "")) for rs in self.replicasets or []}
        if self.hpa is not None:
            names.add(str((self.hpa.get("metadata") or {}).get("name", "")))
        seen: set[str] = set()
        out: list[tuple[bool, float, Obj]] = []
        for e in [*self.events, *(self.warnings or [])]:
            meta = e.get("metadata") or {}
            key = str(meta.get("uid") or meta.get("name"))
            obj = e.get("involvedObject") or {}
            if key in seen or str(obj.get("name", "")) not in names:
                continue
            seen.add(key)
            last = _ts(e.get("lastTimestamp")) or _ts(e.get("eventTime")) or _ts(meta.get("creationTimestamp")) or 0.0
            out.append((e.get("type") != "Warning", -last, {
                "type": e.get("type", ""),
                "reason": e.get("reason", ""),
                "object": f"{obj.get('kind', '')}/{obj.get('name', '')}",
                "message": _clip(self.redactor(str(e.get("message", ""))), self.settings.max_line_chars),
                "count": int(e.get("count") or 1),
                "last_seen": _iso(last) if last else None,
                "age": round(self.now - last, 1) if last else None,
            }))
        out.sort(key=lambda x: (x[0], x[1]))
        return [e for _, _, e in out[: self.settings.max_events]]


def summarize(ev: Mapping[str, Any], pods: list[Obj]) -> str:
    """One line: the pods' state, the last termination reason, and the rollout."""
    parts: list[str] = []
    workload = ev.get("workload") or {}
    desired = (workload.get("replicas") or {}).get("desired")
    total = len(pods)
    problems = [p for p in pods if not (p["all_ready"] and p["state"] == "Running")]
    if ev.get("pods_total") is None:
        parts.append("pods unknown")
    elif problems:
        states = Counter("NotReady" if p["state"] == "Running" else p["state"] for p in problems)
        state, n = states.most_common(1)[0]
        parts.append(f"{n}/{total} pods {state}")
    elif desired is not None and desired != total:
        parts.append(f"{total}/{desired} pods ready")
    else:
        parts.append(f"{total}/{total} pods ready" if total else "no pods")
    terms = Counter(
        (p["last_termination"]["reason"] or "Error", p["last_termination"]["exit_code"])
        for p in (problems or pods) if p["last_termination"] and p["restarts"]
    )
    if terms:
        (reason, code), _ = terms.most_common(1)[0]
        parts.append(reason if reason != "Error" or code in (None, "") else f"Error (exit code {code})")
    rollout = _rollout_phrase(ev)
    if rollout:
        parts.append(rollout)
    line = ", ".join(parts)
    if ev.get("status") == "partial":
        line += " (partial: " + "; ".join(str(e.get("part")) for e in ev.get("errors") or []) + " missing)"
    return line


def _rollout_phrase(ev: Mapping[str, Any]) -> str:
    workload = ev.get("workload") or {}
    kind = workload.get("kind")
    images = ", ".join(dict.fromkeys(workload.get("images") or []))
    image = f" (image {images})" if images else ""
    replicas = workload.get("replicas") or {}
    progressing = next((c for c in workload.get("conditions") or [] if c.get("type") == "Progressing"), None)
    if kind == "Deployment":
        if workload.get("paused"):
            return f"rollout paused{image}"
        if progressing and progressing.get("reason") == "ProgressDeadlineExceeded":
            return f"rollout stuck: ProgressDeadlineExceeded{image}"
        observed = workload.get("observed_generation") or 0
        if observed < (workload.get("generation") or 0) or replicas.get("updated", 0) < replicas.get("desired", 0):
            return f"rollout in progress, {replicas.get('updated', 0)}/{replicas.get('desired', 0)} updated{image}"
        age = ev.get("last_rollout_age")
        if age is not None:
            return f"rolled out {humanize_age(age)} ago{image}"
        return f"image {images}" if images else ""
    if kind == "StatefulSet":
        if workload.get("current_revision") != workload.get("update_revision"):
            return f"rollout in progress, {replicas.get('updated', 0)}/{replicas.get('desired', 0)} updated{image}"
        return f"revision {workload.get('current_revision')}{image}" if workload.get("current_revision") else ""
    return ""


async def gather(
    session: KubeSession,
    target: Target,
    settings: EvidenceSettings,
    redactor: Redactor,
    *,
    clock: Callable[[], float] = time.time,
) -> Obj:
    """Gather the evidence about ``target`` within ``settings.timeout``; never raises (see the module doc).

    ``session`` should have a deadline just after the timeout (:data:`SESSION_GRACE`): retries stop with
    it, and the round's own bound is what ends a stalled read, with one message for it.
    """
    started = time.monotonic()
    g = _Gathering(session, target, settings, redactor, clock())
    timed_out = False
    try:
        async with asyncio.timeout(settings.timeout):
            await g.run()
    except TimeoutError:
        timed_out = True
    return g.result(timed_out, time.monotonic() - started)


async def gather_with(
    client: KubeClient | None, target: Target, settings: EvidenceSettings, redactor: Redactor
) -> Obj:
    """:func:`gather` with a session of ``client``; the client is built first, outside the time bound."""
    if client is not None:
        with contextlib.suppress(KubeError):  # gather() reports what is wrong with it
            await client.api()
    session = KubeSession(client, dry_run=False, deadline=time.monotonic() + settings.timeout + SESSION_GRACE)
    return await gather(session, target, settings, redactor)


def planned_requests(target: Target, settings: EvidenceSettings) -> list[str]:
    """The reads :func:`gather` sends for ``target``, for ``alert-router runbook test``."""
    ns, name = target.namespace, target.name
    core = f"/api/v1/namespaces/{ns}"
    reads = {
        "Deployment": [f"GET /apis/apps/v1/namespaces/{ns}/deployments/{name}",
                       f"GET /apis/apps/v1/namespaces/{ns}/replicasets?labelSelector=<the Deployment's selector>"],
        "StatefulSet": [f"GET /apis/apps/v1/namespaces/{ns}/statefulsets/{name}"],
        "Pod": [f"GET {core}/pods?fieldSelector=metadata.name={name}"],
    }[target.kind]
    out = [*reads, f"GET {core}/events?fieldSelector=involvedObject.kind={target.kind},involvedObject.name={name}"]
    if target.kind != "Pod":
        out += [f"GET {core}/events?fieldSelector=type=Warning",
                f"GET /apis/autoscaling/v2/namespaces/{ns}/horizontalpodautoscalers",
                f"GET {core}/pods?labelSelector=<the {target.kind}'s selector>"]
    if settings.log_lines and settings.max_logs:
        out.append(f"GET {core}/pods/<crash-looping pod>/log?previous=true&tailLines={settings.log_lines} "
                   f"(up to {settings.max_logs} pods)")
    return out
