"""A loopback stand-in for the Kubernetes API server, driven through the real ``kubernetes`` client.

Threading model (chosen for robustness): the stand-in runs its aiohttp server and its simulated
controllers on **its own event loop in its own thread**. The official client is synchronous
(urllib3), so whatever calls it - a test directly, or service code through
``asyncio.to_thread`` - can never deadlock against the stand-in, and the fixture works from sync
and async tests alike. All state is guarded by one re-entrant lock, so the seeding helpers,
inspection helpers and fault switches are safe to call from the test thread at any time.

What is modelled (paths, shapes, status codes and ``Status`` bodies as the real API server has them):

* apps/v1 ``deployments``: get, list, create, update (PUT), patch (strategic-merge, merge and
  JSON patch; a dict body from the python client arrives as ``application/strategic-merge-patch+json``),
  delete, ``/scale`` (autoscaling/v1 ``Scale``: get, update, patch) and ``/status`` (get).
  ``metadata.generation`` is bumped on spec changes, ``metadata.resourceVersion`` on every
  write; a write carrying a stale ``resourceVersion`` answers 409 Conflict. A simulated
  Deployment controller (an asyncio task, one step every ``controller_step`` seconds) observes
  generations and rolls pods over one at a time (maxSurge 1, maxUnavailable 0) until done;
  zero-valued status counters are omitted like the real ``omitempty`` JSON. Tests can stall it,
  force ``ProgressDeadlineExceeded``, or let ``spec.progressDeadlineSeconds`` expire for real.
  The controller keeps one apps/v1 ``replicasets`` object per pod template (controller
  ownerReference, ``deployment.kubernetes.io/revision``, ``kubernetes.io/change-cause`` copied; a
  rollback reuses the old one and records ``revision-history``; pruned beyond
  ``revisionHistoryLimit``) and emits ``ScalingReplicaSet`` events.
* apps/v1 ``statefulsets`` (rolling update one pod at a time, ``/scale``, the API server's rule on
  which spec fields may change) and autoscaling/v2 ``horizontalpodautoscalers`` (the controller
  holds the target's replicas at the metric recommendation within [minReplicas, maxReplicas]).
* core/v1 ``pods``: get, list (labelSelector, fieldSelector), create, delete (a pod owned by a
  ReplicaSet is replaced by a new one), ``/log`` (``tailLines``, ``container``, ``previous`` - 400
  when there is no previous container, as the kubelet answers); core/v1 and events.k8s.io/v1
  ``events`` list (``add_event`` seeds them).
* batch/v1 ``cronjobs`` and ``jobs`` (create validates the name as a DNS-1123 subdomain and
  at most 63 characters, answers 409 AlreadyExists and 422 Invalid; a simulated Job controller
  completes, fails or hangs created Jobs; the CronJob controller prunes the finished Jobs it
  controls beyond its history limits); coordination.k8s.io/v1 ``leases``.
* Bearer-token authentication (401), RBAC from a rule list (403 Forbidden ``Status`` with the
  real message), optionally OwnerReferencesPermissionEnforcement, ``dryRun=All`` (authorized and
  validated, never persisted), fault injection (``fail_next``, ``conflict_next``, ``delay``,
  ``path_delays``) and a record of every request.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import json
import random
import re
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml
from aiohttp import web

JSON = Any
Obj = dict[str, Any]

DEFAULT_TOKEN = "standin-token"  # a test credential for a loopback stand-in
DEFAULT_USER = "system:serviceaccount:alert-router:alert-router"

#: The RBAC a remediator needs (protocols.md): nothing more.
REMEDIATOR_RULES: list[dict[str, list[str]]] = [
    {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list", "patch"]},
    {"apiGroups": ["apps"], "resources": ["deployments/scale"], "verbs": ["get", "patch"]},
    {"apiGroups": ["apps"], "resources": ["replicasets"], "verbs": ["list"]},
    {"apiGroups": ["apps"], "resources": ["statefulsets", "statefulsets/scale"], "verbs": ["get", "patch"]},
    {"apiGroups": ["autoscaling"], "resources": ["horizontalpodautoscalers"], "verbs": ["list", "patch"]},
    {"apiGroups": ["batch"], "resources": ["cronjobs"], "verbs": ["get"]},
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create", "get"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "delete"]},
    {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
    {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["list"]},
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update"]},
]

#: Everything allowed (like cluster-admin).
ALLOW_ALL_RULES: list[dict[str, list[str]]] = [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]

MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
POD_TEMPLATE_HASH = "pod-template-hash"
CHANGE_CAUSE = "kubernetes.io/change-cause"
#: Deployment annotations the controller does not copy to its ReplicaSets (deployment/util SkipCopyAnnotation).
_RS_SKIP_ANNOTATIONS = frozenset({
    "kubectl.kubernetes.io/last-applied-configuration", REVISION, REVISION_HISTORY,
    "deployment.kubernetes.io/desired-replicas", "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
})

_DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN_RE = re.compile(rf"{_DNS1123_LABEL}(\.{_DNS1123_LABEL})*")
_DNS1123_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
    "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
_GENERATE_CHARS = "bcdfghjklmnpqrstvwxz2456789"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _now_micro() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _suffix(n: int = 5) -> str:
    return "".join(random.choice(_GENERATE_CHARS) for _ in range(n))


def _plural_of(kind: str) -> str:
    """The plural of a kind the stand-in serves (``Deployment`` -> ``deployments``)."""
    return next((r.plural for r in RESOURCES.values() if r.kind == kind), kind.lower() + "s")


def _template_hash(template: JSON) -> str:
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()
    return "".join(_GENERATE_CHARS[int(digest[i : i + 2], 16) % len(_GENERATE_CHARS)] for i in range(0, 20, 2))


# =========================================================================== errors


class ApiError(Exception):
    """An API error answered as a ``Status`` object (raised inside handlers)."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        details: Obj | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = dict(headers or {})

    def status(self) -> Obj:
        """The ``Status`` body the real API server would send."""
        body: Obj = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


@dataclass(frozen=True)
class _Res:
    """One API resource type the stand-in serves."""

    group: str
    version: str
    plural: str
    kind: str
    verbs: frozenset[str]
    subresources: Mapping[str, frozenset[str]] = field(default_factory=dict)
    has_status: bool = True
    has_generation: bool = True
    field_selectors: frozenset[str] = frozenset({"metadata.name", "metadata.namespace"})

    @property
    def api_version(self) -> str:
        """``group/version`` or ``v1`` for the core group."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """``plural.group`` as used in error messages (``deployments.apps``)."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def details(self, name: str | None = None) -> Obj:
        """The ``details`` of a ``Status`` about this resource."""
        d: Obj = {"group": self.group, "kind": self.plural}
        if name:
            d = {"name": name, **d}
        return d

    def not_found(self, name: str) -> ApiError:
        """404 NotFound for ``name``."""
        return ApiError(404, "NotFound", f'{self.qualified} "{name}" not found', self.details(name))

    def conflict(self, name: str) -> ApiError:
        """409 Conflict for a stale resourceVersion."""
        return ApiError(
            409,
            "Conflict",
            f'Operation cannot be fulfilled on {self.qualified} "{name}": the object has been modified; '
            "please apply your changes to the latest version and try again",
            self.details(name),
        )

    def invalid(self, name: str, causes: Sequence[tuple[str, str]]) -> ApiError:
        """422 Invalid with ``(field, message)`` causes."""
        kind_q = f"{self.kind}.{self.group}" if self.group else self.kind
        text = ", ".join(f"{f}: {m}" for f, m in causes)
        msg = f'{kind_q} "{name}" is invalid: ' + (f"[{text}]" if len(causes) > 1 else text)
        return ApiError(
            422,
            "Invalid",
            msg,
            {
                "name": name,
                "group": self.group,
                "kind": self.kind,
                "causes": [{"reason": _cause_reason(m), "message": m, "field": f} for f, m in causes],
            },
        )


def _cause_reason(message: str) -> str:
    if message.startswith("Required value"):
        return "FieldValueRequired"
    if message.startswith("Unsupported value"):
        return "FieldValueNotSupported"
    return "FieldValueInvalid"


def _not_found() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


_STD_VERBS = frozenset({"get", "list", "create", "update", "patch", "delete"})


def _scalable(plural: str, kind: str) -> _Res:
    """An apps/v1 workload with ``/scale`` and ``/status`` subresources."""
    return _Res("apps", "v1", plural, kind, _STD_VERBS,
                {"scale": frozenset({"get", "update", "patch"}), "status": frozenset({"get"})})


RESOURCES: dict[tuple[str, str, str], _Res] = {
    ("apps", "v1", "deployments"): _scalable("deployments", "Deployment"),
    ("", "v1", "pods"): _Res(
        "",
        "v1",
        "pods",
        "Pod",
        _STD_VERBS,
        {"log": frozenset({"get"})},
        has_generation=False,
        field_selectors=frozenset({"metadata.name", "metadata.namespace", "status.phase", "spec.nodeName"}),
    ),
    ("", "v1", "events"): _Res(
        "",
        "v1",
        "events",
        "Event",
        frozenset({"get", "list", "create"}),
        has_status=False,
        has_generation=False,
        field_selectors=frozenset(
            {
                "metadata.name",
                "metadata.namespace",
                "involvedObject.kind",
                "involvedObject.name",
                "involvedObject.namespace",
                "involvedObject.uid",
                "reason",
                "type",
            }
        ),
    ),
    ("events.k8s.io", "v1", "events"): _Res(
        "events.k8s.io",
        "v1",
        "events",
        "Event",
        frozenset({"get", "list"}),
        has_status=False,
        has_generation=False,
        field_selectors=frozenset(
            {"metadata.name", "metadata.namespace", "regarding.kind", "regarding.name", "reason", "type"}
        ),
    ),
    ("apps", "v1", "replicasets"): _scalable("replicasets", "ReplicaSet"),
    ("apps", "v1", "statefulsets"): _scalable("statefulsets", "StatefulSet"),
    ("autoscaling", "v2", "horizontalpodautoscalers"): _Res(
        "autoscaling",
        "v2",
        "horizontalpodautoscalers",
        "HorizontalPodAutoscaler",
        _STD_VERBS,
        {"status": frozenset({"get"})},
    ),
    ("batch", "v1", "cronjobs"): _Res("batch", "v1", "cronjobs", "CronJob", _STD_VERBS),
    ("batch", "v1", "jobs"): _Res(
        "batch",
        "v1",
        "jobs",
        "Job",
        _STD_VERBS,
        field_selectors=frozenset({"metadata.name", "metadata.namespace", "status.successful"}),
    ),
    ("coordination.k8s.io", "v1", "leases"): _Res(
        "coordination.k8s.io", "v1", "leases", "Lease", _STD_VERBS, has_status=False, has_generation=False
    ),
}


# =========================================================================== patches

#: Patch merge keys of the strategic-merge-patch schema for the fields the stand-in serves.
SMP_MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "ports": "containerPort",
    "imagePullSecrets": "name",
    "conditions": "type",
    "ownerReferences": "uid",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name",
}


def _strip_directives(value: JSON) -> JSON:
    if isinstance(value, dict):
        return {
            k: _strip_directives(v)
            for k, v in value.items()
            if not (k == "$patch" or k.startswith("$setElementOrder/") or k.startswith("$retainKeys"))
            and not k.startswith("$deleteFromPrimitiveList/")
        }
    if isinstance(value, list):
        return [_strip_directives(v) for v in value]
    return value


def strategic_merge(original: JSON, patch: JSON) -> JSON:
    """Apply a strategic merge patch (the subset of the directives real clients send)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return _strip_directives(patch)
    result: Obj = copy.deepcopy(original) if isinstance(original, dict) else {}
    for key, value in patch.items():
        if key == "$patch" or key.startswith("$setElementOrder/") or key.startswith("$retainKeys"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            target = key.split("/", 1)[1]
            if isinstance(result.get(target), list) and isinstance(value, list):
                result[target] = [x for x in result[target] if x not in value]
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            if value.get("$patch") == "delete":
                result.pop(key, None)
            else:
                result[key] = strategic_merge(result.get(key), value)
        elif isinstance(value, list) and key in SMP_MERGE_KEYS and isinstance(result.get(key), list):
            result[key] = _merge_list(result[key], value, SMP_MERGE_KEYS[key])
        else:
            result[key] = _strip_directives(value)
    return result


def _merge_list(original: list[JSON], patch: list[JSON], merge_key: str) -> list[JSON]:
    if any(isinstance(item, dict) and item.get("$patch") == "replace" for item in patch):
        return [_strip_directives(i) for i in patch if not (isinstance(i, dict) and i.get("$patch") == "replace")]
    out = copy.deepcopy(original)
    for item in patch:
        if not isinstance(item, dict) or merge_key not in item:
            raise ApiError(400, "BadRequest", f"map: {item} does not contain declared merge key: {merge_key}")
        idx = next(
            (i for i, cur in enumerate(out) if isinstance(cur, dict) and cur.get(merge_key) == item[merge_key]),
            None,
        )
        if item.get("$patch") == "delete":
            if idx is not None:
                del out[idx]
        elif idx is None:
            out.append(_strip_directives(item))
        else:
            out[idx] = strategic_merge(out[idx], item)
    return out


def json_merge_patch(target: JSON, patch: JSON) -> JSON:
    """Apply an RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result: Obj = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = json_merge_patch(result.get(key), value)
    return result


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise ApiError(400, "BadRequest", f'JSON pointer "{path}" must start with "/"')
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _container_at(doc: JSON, parts: list[str]) -> JSON:
    cur = doc
    for p in parts:
        if isinstance(cur, dict) and p in cur:
            cur = cur[p]
        elif isinstance(cur, list) and p.isdigit() and int(p) < len(cur):
            cur = cur[int(p)]
        else:
            raise KeyError(p)
    return cur


def json_patch(doc: JSON, ops: JSON) -> JSON:
    """Apply an RFC 6902 JSON patch; failed operations raise 422 like the API server."""
    if not isinstance(ops, list):
        raise ApiError(
            400,
            "BadRequest",
            "json: cannot unmarshal object into Go value of type jsonpatch.Patch",
        )
    result = copy.deepcopy(doc)

    def fail(msg: str) -> ApiError:
        return ApiError(422, "Invalid", f"the server rejected our request due to an error in our request: {msg}")

    def read(path: str) -> JSON:
        try:
            return copy.deepcopy(_container_at(result, _pointer(path)))
        except KeyError:
            raise fail(f"path {path!r} does not exist") from None

    def remove(path: str) -> None:
        parts = _pointer(path)
        try:
            parent = _container_at(result, parts[:-1])
        except KeyError:
            raise fail(f"path {path!r} does not exist") from None
        last = parts[-1] if parts else ""
        if isinstance(parent, dict) and last in parent:
            del parent[last]
        elif isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
            del parent[int(last)]
        else:
            raise fail(f"unable to remove nonexistent key: {last}: missing value")

    def add(path: str, value: JSON, replace: bool = False) -> None:
        nonlocal result
        parts = _pointer(path)
        if not parts:
            result = copy.deepcopy(value)
            return
        try:
            parent = _container_at(result, parts[:-1])
        except KeyError:
            raise fail(f"doc is missing path: {path!r}") from None
        last = parts[-1]
        if isinstance(parent, dict):
            if replace and last not in parent:
                raise fail(f"replace operation does not apply: doc is missing key: {path}: missing value")
            parent[last] = copy.deepcopy(value)
        elif isinstance(parent, list):
            if last == "-" and not replace:
                parent.append(copy.deepcopy(value))
            elif last.isdigit() and int(last) <= len(parent) - (1 if replace else 0):
                if replace:
                    parent[int(last)] = copy.deepcopy(value)
                else:
                    parent.insert(int(last), copy.deepcopy(value))
            else:
                raise fail(f"index out of range: {path}")
        else:
            raise fail(f"doc is missing path: {path!r}")

    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise ApiError(400, "BadRequest", f"invalid JSON patch operation: {op!r}")
        kind, path = op["op"], op["path"]
        if kind == "add":
            add(path, op.get("value"))
        elif kind == "remove":
            remove(path)
        elif kind == "replace":
            add(path, op.get("value"), replace=True)
        elif kind == "move":
            value = read(op["from"])
            remove(op["from"])
            add(path, value)
        elif kind == "copy":
            add(path, read(op["from"]))
        elif kind == "test":
            if read(path) != op.get("value"):
                raise fail(f"testing value {path} failed: test failed")
        else:
            raise ApiError(400, "BadRequest", f"Unexpected kind: {kind}")
    return result


# =========================================================================== selectors


def parse_label_selector(selector: str) -> Callable[[Mapping[str, str]], bool]:
    """Compile a Kubernetes label selector string (equality- and set-based) into a predicate."""
    reqs: list[Callable[[Mapping[str, str]], bool]] = []
    parts: list[str] = []
    depth, cur = 0, ""
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip() or parts:
        parts.append(cur)
    key_re = r"[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?"
    for raw in parts:
        part = raw.strip()
        if m := re.fullmatch(rf"({key_re})\s+(in|notin)\s*\(([^()]*)\)", part):
            values = frozenset(v.strip() for v in m.group(4).split(","))
            reqs.append(_set_requirement(m.group(1), values, negate=m.group(3) == "notin"))
        elif m := re.fullmatch(rf"({key_re})\s*(==|=|!=)\s*([-A-Za-z0-9_.]*)", part):
            reqs.append(_set_requirement(m.group(1), frozenset({m.group(4)}), negate=m.group(3) == "!="))
        elif m := re.fullmatch(rf"!\s*({key_re})", part):
            reqs.append(_exists_requirement(m.group(1), negate=True))
        elif re.fullmatch(key_re, part):
            reqs.append(_exists_requirement(part, negate=False))
        else:
            raise ApiError(400, "BadRequest", f"unable to parse requirement: found '{part}', expected: key")

    def matches(labels: Mapping[str, str]) -> bool:
        return all(r(labels) for r in reqs)

    return matches


def _set_requirement(key: str, values: frozenset[str], *, negate: bool) -> Callable[[Mapping[str, str]], bool]:
    def requirement(labels: Mapping[str, str]) -> bool:
        return (labels.get(key) in values) != negate

    return requirement


def _exists_requirement(key: str, *, negate: bool) -> Callable[[Mapping[str, str]], bool]:
    def requirement(labels: Mapping[str, str]) -> bool:
        return (key in labels) != negate

    return requirement


def _dig(obj: JSON, dotted: str) -> JSON:
    cur = obj
    for p in dotted.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(p)
    return cur


def _field_predicate(res: _Res, selector: str) -> Callable[[Obj], bool]:
    reqs: list[Callable[[Obj], bool]] = []
    for raw in selector.split(","):
        part = raw.strip()
        if not part:
            continue
        m = re.fullmatch(r"([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*)", part)
        if not m:
            raise ApiError(400, "BadRequest", f"invalid selector: '{selector}'; can't understand '{part}'")
        key, op, value = m.groups()
        if key not in res.field_selectors:
            raise ApiError(400, "BadRequest", f"field label not supported: {key}")

        def pred(o: Obj, k: str = key, neg: bool = op == "!=", v: str = value) -> bool:
            got = _dig(o, k)
            got_s = "" if got is None else str(got)
            return (got_s != v) if neg else (got_s == v)

        reqs.append(pred)
    return lambda o: all(r(o) for r in reqs)


# =========================================================================== records and state


@dataclass(frozen=True)
class KubeRequest:
    """One request the stand-in received."""

    method: str
    path: str
    query: dict[str, str]
    content_type: str | None
    body: JSON
    headers: dict[str, str]
    status: int = 0

    @property
    def mutating(self) -> bool:
        """True for POST/PUT/PATCH/DELETE (dry-run requests included)."""
        return self.method in MUTATING_METHODS

    @property
    def dry_run(self) -> bool:
        """True for a request sent with ``dryRun=All`` (checked by the server, never persisted)."""
        return self.query.get("dryRun") == "All"


@dataclass
class _Fault:
    remaining: int
    status: int
    kind: str  # "fail" or "conflict"
    method: str | None = None
    path_contains: str | None = None

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (
            self.path_contains is None or self.path_contains in path
        )


@dataclass
class _Rollout:
    """The simulated ReplicaSets of one Deployment."""

    template_hash: str
    new_count: int
    new_available: int
    old: int = 0
    stalled: bool = False
    forced_deadline: bool = False
    last_progress: float = field(default_factory=time.monotonic)
    #: The template hash of the ReplicaSet that still holds the ``old`` pods.
    old_hash: str | None = None


@dataclass
class _StsRollout:
    """The simulated pods of one StatefulSet: how many run the update revision, how many are ready."""

    update_hash: str
    current_hash: str
    updated: int
    ready: int
    stalled: bool = False


_REASON_BY_CODE = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


class KubeApiStandin:
    """A Kubernetes API server stand-in on ``127.0.0.1:<ephemeral>``, running in its own thread.

    Use ``with KubeApiStandin() as kube:`` (or ``async with``), then
    ``kube.kubeconfig(tmp_path / "kubeconfig")`` and the real client's
    ``kubernetes.config.new_client_from_config(config_file=...)``.

    ``rules`` is an RBAC rule list (``apiGroups`` optional, ``resources`` with subresources such
    as ``deployments/scale``, ``verbs``, optional ``resourceNames`` and ``namespaces``); the
    default is :data:`REMEDIATOR_RULES`. ``controller_step`` is the delay between simulated
    controller steps (``None`` disables the background controller; call :meth:`tick`).
    ``job_outcome`` is what the Job controller does with created Jobs: ``"complete"``,
    ``"fail"`` or ``"hang"``. ``owner_references_permission_enforcement`` switches on the
    admission plugin of that name (enabled on OpenShift): an object whose ownerReference sets
    ``blockOwnerDeletion`` needs ``update`` on the owner's ``finalizers`` subresource.
    """

    def __init__(
        self,
        *,
        rules: Sequence[Mapping[str, Sequence[str]]] | None = None,
        token: str = DEFAULT_TOKEN,
        user: str = DEFAULT_USER,
        controller_step: float | None = 0.05,
        job_outcome: str = "complete",
        respawn_pods: bool = True,
        owner_references_permission_enforcement: bool = False,
    ) -> None:
        self.rules: list[Mapping[str, Sequence[str]]] = list(REMEDIATOR_RULES if rules is None else rules)
        self.token = token
        self.user = user
        self.controller_step = controller_step
        self.job_outcome = job_outcome
        self.respawn_pods = respawn_pods
        self.owner_references_permission_enforcement = owner_references_permission_enforcement
        #: Seconds slept before answering each request.
        self.delay: float = 0.0
        #: (path fragment, seconds): requests whose path contains the fragment stall that long first.
        self.path_delays: list[tuple[str, float]] = []
        self.requests: list[KubeRequest] = []
        #: Exceptions raised by the stand-in's own code (a bug here, not in the code under test).
        self.internal_errors: list[str] = []
        self._lock = threading.RLock()
        self._objects: dict[tuple[str, str, str], Obj] = {}  # (res key, namespace, name) -> object
        self._rollouts: dict[tuple[str, str], _Rollout] = {}
        self._sts: dict[tuple[str, str], _StsRollout] = {}
        self._hpa_recommendations: dict[tuple[str, str], int] = {}
        self._previous_logs: dict[tuple[str, str], str] = {}
        self._job_outcomes: dict[tuple[str, str], str] = {}
        self._pod_logs: dict[tuple[str, str], str] = {}
        self._faults: list[_Fault] = []
        self._rv = 1000
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._controller_task: asyncio.Task[None] | None = None
        self._port = 0

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start the server thread and wait until it listens."""
        if self._thread is not None:
            raise RuntimeError("already started")
        ready = threading.Event()
        failure: list[BaseException] = []
        loop = asyncio.new_event_loop()
        self._loop = loop

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._astart())
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self._astop())
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=run, name="kube-api-standin", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("kube stand-in did not start within 10 s")
        if failure:
            self._thread.join(5)
            self._thread = None
            raise failure[0]

    def stop(self) -> None:
        """Stop the server and its controllers, and join the thread."""
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(15)
        if self._thread.is_alive():
            raise RuntimeError("kube stand-in thread did not stop")
        self._thread = None

    def __enter__(self) -> KubeApiStandin:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> KubeApiStandin:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.stop)

    async def _astart(self) -> None:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        sockets = getattr(server, "sockets", None)
        assert sockets
        self._port = int(sockets[0].getsockname()[1])
        if self.controller_step is not None:
            self._controller_task = asyncio.get_running_loop().create_task(self._controller())

    async def _astop(self) -> None:
        if self._controller_task is not None:
            self._controller_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._controller_task
            self._controller_task = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _controller(self) -> None:
        assert self.controller_step is not None
        while True:
            await asyncio.sleep(self.controller_step)
            try:
                self.tick()
            except Exception:
                self.internal_errors.append(traceback.format_exc())

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:41234``."""
        if not self._port:
            raise RuntimeError("KubeApiStandin is not started")
        return f"http://127.0.0.1:{self._port}"

    def kubeconfig(self, path: str | Path, *, namespace: str = "default", token: str | None = None) -> Path:
        """Write a kubeconfig that points the official client at this stand-in (plain http, bearer token)."""
        return write_kubeconfig(path, self.url, self.token if token is None else token, namespace=namespace)

    # ------------------------------------------------------------------ fault injection
    def fail_next(
        self, n: int = 1, status: int = 500, *, method: str | None = None, path_contains: str | None = None
    ) -> None:
        """Answer the next ``n`` requests with ``status``.

        With ``method`` and/or ``path_contains`` only matching requests fail (and count down).
        """
        with self._lock:
            self._faults.append(_Fault(n, status, "fail", method, path_contains))

    def conflict_next(self, n: int = 1, *, path_contains: str | None = None) -> None:
        """Answer the next ``n`` updates/patches (optionally matching ``path_contains``) with 409 Conflict."""
        with self._lock:
            self._faults.append(_Fault(n, 409, "conflict", None, path_contains))

    # ------------------------------------------------------------------ records
    @property
    def mutating_requests(self) -> list[KubeRequest]:
        """Every POST/PUT/PATCH/DELETE received so far."""
        with self._lock:
            return [r for r in self.requests if r.mutating]

    @property
    def persisting_requests(self) -> list[KubeRequest]:
        """Every POST/PUT/PATCH/DELETE received so far that was not a server-side dry run."""
        with self._lock:
            return [r for r in self.requests if r.mutating and not r.dry_run]

    def requests_to(self, path_contains: str, method: str | None = None) -> list[KubeRequest]:
        """Requests whose path contains ``path_contains`` (and whose method is ``method``, if given)."""
        with self._lock:
            return [r for r in self.requests if path_contains in r.path and (method is None or r.method == method)]

    # ------------------------------------------------------------------ seeding
    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def _new_meta(self, namespace: str, name: str, labels: Mapping[str, str] | None, **extra: Any) -> Obj:
        meta: Obj = {
            "name": name,
            "namespace": namespace,
            "uid": str(uuid.uuid4()),
            "resourceVersion": self._next_rv(),
            "creationTimestamp": _now(),
        }
        if labels:
            meta["labels"] = dict(labels)
        meta.update({k: v for k, v in extra.items() if v is not None})
        return meta

    def add_deployment(
        self,
        namespace: str,
        name: str,
        replicas: int = 1,
        paused: bool = False,
        *,
        image: str = "registry.example/app:1.0",
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
        progress_deadline_seconds: int = 600,
        ready: bool = True,
    ) -> Obj:
        """Seed an apps/v1 Deployment (selector and pod labels ``app=<name>``); ``ready`` means fully rolled out."""
        pod_labels = {"app": name}
        template = {
            "metadata": {"labels": dict(pod_labels)},
            "spec": {
                "containers": [
                    {
                        "name": name,
                        "image": image,
                        "imagePullPolicy": "IfNotPresent",
                        "resources": {},
                        "terminationMessagePath": "/dev/termination-log",
                        "terminationMessagePolicy": "File",
                    }
                ],
                "restartPolicy": "Always",
                "terminationGracePeriodSeconds": 30,
                "dnsPolicy": "ClusterFirst",
                "schedulerName": "default-scheduler",
                "securityContext": {},
            },
        }
        with self._lock:
            meta = self._new_meta(
                namespace, name, labels or {"app": name}, generation=1, annotations=dict(annotations or {}) or None
            )
            if "annotations" not in meta:
                meta["annotations"] = {"deployment.kubernetes.io/revision": "1"}
            dep: Obj = {
                "kind": "Deployment",
                "apiVersion": "apps/v1",
                "metadata": meta,
                "spec": {
                    "replicas": replicas,
                    "selector": {"matchLabels": dict(pod_labels)},
                    "template": template,
                    "strategy": {
                        "type": "RollingUpdate",
                        "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
                    },
                    "revisionHistoryLimit": 10,
                    "progressDeadlineSeconds": progress_deadline_seconds,
                },
                "status": {},
            }
            if paused:
                dep["spec"]["paused"] = True
            count = replicas if ready else 0
            self._rollouts[(namespace, name)] = _Rollout(_template_hash(template), count, count)
            if ready:
                dep["status"]["observedGeneration"] = 1
            self._objects[("deployments", namespace, name)] = dep
            self._refresh_deployment_status(dep, self._rollouts[(namespace, name)], bump=False)
            return copy.deepcopy(dep)

    def add_pod(
        self,
        namespace: str,
        name: str,
        labels: Mapping[str, str] | None = None,
        *,
        phase: str = "Running",
        ready: bool = True,
        restart_count: int = 0,
        image: str = "registry.example/app:1.0",
        node_name: str = "node-1",
        owner_deployment: str | None = None,
        owner_statefulset: str | None = None,
        logs: str = "",
        waiting_reason: str | None = None,
        last_termination: Mapping[str, Any] | None = None,
        previous_logs: str | None = None,
    ) -> Obj:
        """Seed a core/v1 Pod.

        ``owner_deployment`` makes it owned by that Deployment's current ReplicaSet (with its
        ``pod-template-hash``), ``owner_statefulset`` by that StatefulSet. ``waiting_reason``
        (e.g. ``CrashLoopBackOff``) puts the container in a waiting state; ``last_termination``
        (``reason``, ``exitCode``) is the previous container's end, whose log is ``previous_logs``
        (``GET .../log?previous=true`` answers 400 when there is no previous container, as the
        kubelet does).
        """
        with self._lock:
            owner_refs = None
            pod_labels = dict(labels or {})
            if owner_deployment is not None:
                ro = self._rollouts.get((namespace, owner_deployment))
                hash_ = ro.template_hash if ro else _template_hash(owner_deployment)
                pod_labels.setdefault("app", owner_deployment)
                pod_labels[POD_TEMPLATE_HASH] = hash_
                rs_name = f"{owner_deployment}-{hash_}"
                rs = self._objects.get(("replicasets", namespace, rs_name))
                uid = rs["metadata"]["uid"] if rs else str(uuid.uuid5(uuid.NAMESPACE_URL, f"{namespace}/{rs_name}"))
                owner_refs = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs_name, "uid": uid,
                               "controller": True, "blockOwnerDeletion": True}]
            elif owner_statefulset is not None:
                sts = self._objects[("statefulsets", namespace, owner_statefulset)]
                pod_labels.update(sts["spec"]["selector"].get("matchLabels", {}))
                revision = self._sts[(namespace, owner_statefulset)].current_hash
                pod_labels["controller-revision-hash"] = f"{owner_statefulset}-{revision}"
                pod_labels["statefulset.kubernetes.io/pod-name"] = name
                owner_refs = [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": owner_statefulset,
                               "uid": sts["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}]
            pod = self._make_pod(namespace, name, pod_labels, phase, ready, restart_count, image, node_name, owner_refs)
            cstatus = pod["status"]["containerStatuses"][0]
            if waiting_reason:
                cstatus["state"] = {"waiting": {"reason": waiting_reason, "message": (
                    f"back-off 5m0s restarting failed container={cstatus['name']} pod={name}_{namespace}"
                    f"({pod['metadata']['uid']})")}}
                cstatus["started"] = False
            if previous_logs is not None and last_termination is None:
                last_termination = {"reason": "Error", "exitCode": 1}
            if last_termination is not None:
                term = {"exitCode": 0, "startedAt": _now(), "finishedAt": _now(), **dict(last_termination),
                        "containerID": f"containerd://{uuid.uuid4().hex}"}
                cstatus["lastState"] = {"terminated": term}
            self._objects[("pods", namespace, name)] = pod
            self._pod_logs[(namespace, name)] = logs
            if last_termination is not None:
                self._previous_logs[(namespace, name)] = previous_logs or ""
            return copy.deepcopy(pod)

    def add_event(
        self,
        namespace: str,
        kind: str,
        name: str,
        reason: str,
        message: str,
        *,
        type_: str = "Warning",
        count: int = 1,
        age: float = 0.0,
        component: str = "kubelet",
    ) -> Obj:
        """Seed a core/v1 Event about ``kind``/``name`` (``age``: seconds since it was last seen)."""
        with self._lock:
            stored = self._objects.get((_plural_of(kind), namespace, name))
            meta = (stored or {}).get("metadata", {})
            api_version = (stored or {}).get("apiVersion", "v1")
            return copy.deepcopy(self._store_event(
                namespace, kind, name, reason, message, type_=type_, count=count, age=age, component=component,
                uid=meta.get("uid", ""), api_version=api_version))

    def _store_event(
        self,
        namespace: str,
        kind: str,
        name: str,
        reason: str,
        message: str,
        *,
        type_: str,
        uid: str,
        api_version: str,
        component: str,
        count: int = 1,
        age: float = 0.0,
    ) -> Obj:
        when = datetime.fromtimestamp(time.time() - age, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event_name = f"{name}.{uuid.uuid4().hex[:16]}"
        event: Obj = {
            "kind": "Event",
            "apiVersion": "v1",
            "metadata": self._new_meta(namespace, event_name, None),
            "involvedObject": {"kind": kind, "namespace": namespace, "name": name, "uid": uid,
                               "apiVersion": api_version},
            "reason": reason,
            "message": message,
            "source": {"component": component},
            "firstTimestamp": when,
            "lastTimestamp": when,
            "count": count,
            "type": type_,
            "eventTime": None,
            "reportingComponent": component,
            "reportingInstance": "",
        }
        self._objects[("events", namespace, event_name)] = event
        return event

    def _make_pod(
        self,
        namespace: str,
        name: str,
        labels: Mapping[str, str],
        phase: str,
        ready: bool,
        restart_count: int,
        image: str,
        node_name: str,
        owner_refs: list[Obj] | None,
        generate_name: str | None = None,
    ) -> Obj:
        started = _now()
        container = name.rsplit("-", 2)[0] if owner_refs else name
        return {
            "kind": "Pod",
            "apiVersion": "v1",
            "metadata": self._new_meta(namespace, name, labels, ownerReferences=owner_refs, generateName=generate_name),
            "spec": {
                "containers": [{"name": container, "image": image, "imagePullPolicy": "IfNotPresent"}],
                "restartPolicy": "Always",
                "nodeName": node_name,
                "serviceAccountName": "default",
            },
            "status": {
                "phase": phase,
                "conditions": [
                    {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": started},
                    {"type": "ContainersReady", "status": "True" if ready else "False", "lastTransitionTime": started},
                ],
                "containerStatuses": [
                    {
                        "name": container,
                        "ready": ready,
                        "restartCount": restart_count,
                        "image": image,
                        "imageID": f"{image}@sha256:{hashlib.sha256(image.encode()).hexdigest()}",
                        "started": phase == "Running",
                        "state": {"running": {"startedAt": started}}
                        if phase == "Running"
                        else {"waiting": {"reason": "ContainerCreating"}},
                    }
                ],
                "hostIP": "10.0.0.10",
                "podIP": f"10.244.0.{random.randint(2, 250)}",
                "startTime": started,
                "qosClass": "BestEffort",
            },
        }

    def add_statefulset(
        self,
        namespace: str,
        name: str,
        replicas: int = 1,
        *,
        image: str = "registry.example/app:1.0",
        ready: bool = True,
        partition: int = 0,
        update_strategy: str = "RollingUpdate",
    ) -> Obj:
        """Seed an apps/v1 StatefulSet (selector and pod labels ``app=<name>``); ``ready`` means rolled out."""
        pod_labels = {"app": name}
        template = {
            "metadata": {"labels": dict(pod_labels)},
            "spec": {
                "containers": [{"name": name, "image": image, "imagePullPolicy": "IfNotPresent"}],
                "restartPolicy": "Always",
                "terminationGracePeriodSeconds": 30,
            },
        }
        strategy: Obj = {"type": update_strategy}
        if update_strategy == "RollingUpdate":
            strategy["rollingUpdate"] = {"partition": partition}
        with self._lock:
            sts: Obj = {
                "kind": "StatefulSet",
                "apiVersion": "apps/v1",
                "metadata": self._new_meta(namespace, name, {"app": name}, generation=1),
                "spec": {
                    "replicas": replicas,
                    "selector": {"matchLabels": dict(pod_labels)},
                    "template": template,
                    "serviceName": name,
                    "podManagementPolicy": "OrderedReady",
                    "updateStrategy": strategy,
                    "revisionHistoryLimit": 10,
                    "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
                },
                "status": {"observedGeneration": 1} if ready else {},
            }
            h = _template_hash(template)
            self._sts[(namespace, name)] = _StsRollout(h, h, replicas if ready else 0, replicas if ready else 0)
            self._objects[("statefulsets", namespace, name)] = sts
            self._refresh_statefulset_status(sts, self._sts[(namespace, name)])
            return copy.deepcopy(sts)

    def add_hpa(
        self,
        namespace: str,
        name: str,
        target_kind: str,
        target_name: str,
        *,
        min_replicas: int = 1,
        max_replicas: int = 10,
        recommendation: int | None = None,
    ) -> Obj:
        """Seed an autoscaling/v2 HorizontalPodAutoscaler for ``target_kind``/``target_name``.

        The simulated HPA controller sets the target's replicas on every step to the metric
        ``recommendation`` (default: the target's replicas when the HPA is added) clamped to
        ``[minReplicas, maxReplicas]``, so a scale that ignores the HPA is undone, as on a real
        cluster. ``set_hpa_recommendation`` changes what the metrics ask for.
        """
        with self._lock:
            hpa: Obj = {
                "kind": "HorizontalPodAutoscaler",
                "apiVersion": "autoscaling/v2",
                "metadata": self._new_meta(namespace, name, None, generation=1),
                "spec": {
                    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": target_kind, "name": target_name},
                    "minReplicas": min_replicas,
                    "maxReplicas": max_replicas,
                    "metrics": [{"type": "Resource", "resource": {
                        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}],
                },
                "status": {},
            }
            if recommendation is None:  # what the metrics ask for: the replicas the target runs now
                target = self._objects.get((_plural_of(target_kind), namespace, target_name))
                recommendation = int(target["spec"].get("replicas", 1)) if target else min_replicas
            self._hpa_recommendations[(namespace, name)] = recommendation
            self._objects[("horizontalpodautoscalers", namespace, name)] = hpa
            self._step_hpa(hpa)
            return copy.deepcopy(hpa)

    def set_hpa_recommendation(self, namespace: str, name: str, replicas: int) -> None:
        """What the HPA's metrics ask for from now on."""
        with self._lock:
            self._hpa_recommendations[(namespace, name)] = replicas

    def backdate(self, resource: str, namespace: str, name: str, seconds: float) -> None:
        """Move an object's ``creationTimestamp`` ``seconds`` into the past (e.g. a ReplicaSet created earlier)."""
        with self._lock:
            obj = self._objects[(resource, namespace, name)]
            obj["metadata"]["creationTimestamp"] = datetime.fromtimestamp(time.time() - seconds, UTC).strftime(
                "%Y-%m-%dT%H:%M:%SZ")

    def set_image(self, namespace: str, name: str, image: str, *, change_cause: str | None = None,
                  complete: bool = True) -> Obj:
        """Change a Deployment's first container image as ``kubectl set image`` would, and roll it out.

        ``change_cause`` sets ``kubernetes.io/change-cause`` (copied to the new ReplicaSet);
        ``complete`` jumps the rollout to done. Returns the new ReplicaSet.
        """
        with self._lock:
            dep = self._objects[("deployments", namespace, name)]
            dep["spec"]["template"]["spec"]["containers"][0]["image"] = image
            if change_cause is not None:
                dep["metadata"].setdefault("annotations", {})[CHANGE_CAUSE] = change_cause
            dep["metadata"]["generation"] = int(dep["metadata"].get("generation", 1)) + 1
            dep["metadata"]["resourceVersion"] = self._next_rv()
            ro = self._rollouts[(namespace, name)]
            self._observe_template(dep, ro)
            if complete:
                self.complete_rollout(namespace, name)
            return copy.deepcopy(self._objects[("replicasets", namespace, f"{name}-{ro.template_hash}")])

    def set_paused(self, namespace: str, name: str, paused: bool) -> None:
        """Pause or resume a Deployment (as ``kubectl rollout pause/resume``)."""
        with self._lock:
            dep = self._objects[("deployments", namespace, name)]
            if paused:
                dep["spec"]["paused"] = True
            else:
                dep["spec"].pop("paused", None)
            dep["metadata"]["generation"] = int(dep["metadata"].get("generation", 1)) + 1
            self._refresh_deployment_status(dep, self._rollouts[(namespace, name)], bump=True, force=True)

    def replicasets(self, namespace: str) -> list[Obj]:
        """Snapshots of the ReplicaSets in ``namespace``."""
        return self.list_objects("replicasets", namespace)

    def add_cronjob(
        self,
        namespace: str,
        name: str,
        job_template_spec: Mapping[str, Any],
        *,
        schedule: str = "0 * * * *",
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
        job_labels: Mapping[str, str] | None = None,
        job_annotations: Mapping[str, str] | None = None,
        suspend: bool = False,
    ) -> Obj:
        """Seed a batch/v1 CronJob whose ``spec.jobTemplate.spec`` is ``job_template_spec``."""
        with self._lock:
            job_meta: Obj = {}
            if job_labels:
                job_meta["labels"] = dict(job_labels)
            if job_annotations:
                job_meta["annotations"] = dict(job_annotations)
            cj: Obj = {
                "kind": "CronJob",
                "apiVersion": "batch/v1",
                "metadata": self._new_meta(
                    namespace, name, labels, generation=1, annotations=dict(annotations) if annotations else None
                ),
                "spec": {
                    "schedule": schedule,
                    "concurrencyPolicy": "Allow",
                    "suspend": suspend,
                    "successfulJobsHistoryLimit": 3,
                    "failedJobsHistoryLimit": 1,
                    "jobTemplate": {"metadata": job_meta, "spec": copy.deepcopy(dict(job_template_spec))},
                },
                "status": {},
            }
            self._objects[("cronjobs", namespace, name)] = cj
            return copy.deepcopy(cj)

    # ------------------------------------------------------------------ inspection and control
    def get_object(self, resource: str, namespace: str, name: str) -> Obj | None:
        """A snapshot of a stored object (``resource`` is the plural, e.g. ``"jobs"``), or None."""
        with self._lock:
            obj = self._objects.get((resource, namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    def list_objects(self, resource: str, namespace: str | None = None) -> list[Obj]:
        """Snapshots of every stored object of ``resource`` (in ``namespace``, if given)."""
        with self._lock:
            return [
                copy.deepcopy(o)
                for (r, ns, _), o in sorted(self._objects.items())
                if r == resource and (namespace is None or ns == namespace)
            ]

    def deployment(self, namespace: str, name: str) -> Obj:
        """A snapshot of a Deployment (KeyError if absent)."""
        obj = self.get_object("deployments", namespace, name)
        if obj is None:
            raise KeyError(f"{namespace}/{name}")
        return obj

    def stall(self, namespace: str, name: str) -> None:
        """Make the Deployment's new pods never become available (a stuck rollout)."""
        with self._lock:
            self._rollouts[(namespace, name)].stalled = True

    def unstall(self, namespace: str, name: str) -> None:
        """Undo :meth:`stall` and :meth:`set_progress_deadline_exceeded`."""
        with self._lock:
            ro = self._rollouts[(namespace, name)]
            ro.stalled = ro.forced_deadline = False
            ro.last_progress = time.monotonic()

    def set_progress_deadline_exceeded(self, namespace: str, name: str) -> None:
        """Stall the rollout and set condition Progressing=False, reason ProgressDeadlineExceeded, now."""
        with self._lock:
            ro = self._rollouts[(namespace, name)]
            ro.stalled = ro.forced_deadline = True
            dep = self._objects[("deployments", namespace, name)]
            self._refresh_deployment_status(dep, ro, bump=True)

    def complete_rollout(self, namespace: str, name: str) -> None:
        """Jump a Deployment's rollout to done (observed, updated and available)."""
        with self._lock:
            dep = self._objects[("deployments", namespace, name)]
            ro = self._rollouts[(namespace, name)]
            desired = int(dep["spec"].get("replicas", 1))
            if _template_hash(dep["spec"]["template"]) != ro.template_hash:
                self._observe_template(dep, ro)
            ro.new_count = ro.new_available = desired
            ro.old = 0
            ro.stalled = ro.forced_deadline = False
            dep["status"]["observedGeneration"] = dep["metadata"]["generation"]
            self._refresh_deployment_status(dep, ro, bump=True)

    def set_job_outcome(self, namespace: str, name: str, outcome: str) -> None:
        """Decide what the Job controller does with Job ``name`` (``complete``, ``fail`` or ``hang``)."""
        if outcome not in ("complete", "fail", "hang"):
            raise ValueError(outcome)
        with self._lock:
            self._job_outcomes[(namespace, name)] = outcome

    # ------------------------------------------------------------------ controllers
    def tick(self) -> None:
        """Run one step of the simulated Deployment and Job controllers (thread-safe)."""
        with self._lock:
            for (res, ns, name), obj in list(self._objects.items()):
                if res == "deployments":
                    ro = self._rollouts.get((ns, name))
                    if ro is not None:
                        self._step_deployment(obj, ro)
                elif res == "jobs":
                    self._step_job(ns, name, obj)
                elif res == "statefulsets":
                    sr = self._sts.get((ns, name))
                    if sr is not None:
                        self._step_statefulset(obj, sr)
                elif res == "horizontalpodautoscalers":
                    self._step_hpa(obj)
                elif res == "cronjobs":
                    self._step_cronjob(obj)

    def _observe_template(self, dep: Obj, ro: _Rollout) -> None:
        """A new pod template: its ReplicaSet (new, or an old one reused by a rollback) gets the next revision."""
        if ro.new_available:
            ro.old_hash = ro.template_hash
        ro.old += ro.new_available
        ro.template_hash, ro.new_count, ro.new_available = _template_hash(dep["spec"]["template"]), 0, 0
        self._sync_replicasets(dep, ro, new_template=True)
        rs_name = f"{dep['metadata']['name']}-{ro.template_hash}"
        self._emit_event(dep, "Normal", "ScalingReplicaSet", f"Scaled up replica set {rs_name} from 0 to 1",
                         "deployment-controller")

    def _replicasets_of(self, dep: Obj) -> dict[str, Obj]:
        """The ReplicaSets the Deployment controls, by pod-template-hash."""
        ns, uid = dep["metadata"]["namespace"], dep["metadata"]["uid"]
        out: dict[str, Obj] = {}
        for (res, rns, _), rs in self._objects.items():
            if res != "replicasets" or rns != ns:
                continue
            if any(o.get("uid") == uid and o.get("controller") for o in rs["metadata"].get("ownerReferences") or []):
                out[rs["metadata"]["labels"].get(POD_TEMPLATE_HASH, "")] = rs
        return out

    def _sync_replicasets(self, dep: Obj, ro: _Rollout, *, new_template: bool = False) -> bool:
        """Bring the Deployment's ReplicaSets in line with the rollout; True when the Deployment's revision moved.

        Like the real controller: the ReplicaSet of the current template carries the highest
        ``deployment.kubernetes.io/revision`` (a rollback to an older template reuses that template's
        ReplicaSet and moves its old number to ``revision-history``), the Deployment's annotations are
        copied to it (``kubernetes.io/change-cause`` included), and the Deployment's own revision
        annotation follows it. ReplicaSets beyond ``revisionHistoryLimit`` with no pods are deleted.
        """
        meta = dep["metadata"]
        ns = meta["namespace"]
        rss = self._replicasets_of(dep)
        revisions = {h: int((rs["metadata"].get("annotations") or {}).get(REVISION, "0")) for h, rs in rss.items()}
        top = max(revisions.values(), default=0)
        new = rss.get(ro.template_hash)
        if new is None:
            new = self._make_replicaset(dep, ro.template_hash, top + 1)
            self._objects[("replicasets", ns, new["metadata"]["name"])] = new
            rss[ro.template_hash] = new
            revisions[ro.template_hash] = top + 1
        elif new_template and revisions[ro.template_hash] != top:
            ann = new["metadata"].setdefault("annotations", {})
            old_rev = ann.get(REVISION, "0")
            history = [h for h in ann.get(REVISION_HISTORY, "").split(",") if h]
            ann[REVISION_HISTORY] = ",".join([*history, old_rev])
            ann[REVISION] = str(top + 1)
            revisions[ro.template_hash] = top + 1
            new["metadata"]["resourceVersion"] = self._next_rv()
        desired = int(dep["spec"].get("replicas", 1))
        for h, rs in rss.items():
            before = copy.deepcopy(rs)
            ann = rs["metadata"].setdefault("annotations", {})
            if h == ro.template_hash:
                count, ready = ro.new_count, ro.new_available
                for k, v in (meta.get("annotations") or {}).items():
                    if k not in _RS_SKIP_ANNOTATIONS:
                        ann[k] = v
                ann["deployment.kubernetes.io/desired-replicas"] = str(desired)
                ann["deployment.kubernetes.io/max-replicas"] = str(desired + 1)
            elif h == ro.old_hash:
                count = ready = ro.old
            else:
                count = ready = 0
            rs["spec"]["replicas"] = count
            status = {"replicas": count, "fullyLabeledReplicas": count, "readyReplicas": ready,
                      "availableReplicas": ready, "observedGeneration": rs["metadata"].get("generation", 1)}
            rs["status"] = {k: v for k, v in status.items() if v or k == "replicas"}  # replicas is not omitempty
            if rs != before:
                rs["metadata"]["resourceVersion"] = self._next_rv()
        limit = int(dep["spec"].get("revisionHistoryLimit", 10))
        idle = sorted(
            (revisions[h], h) for h, rs in rss.items() if h != ro.template_hash and not rs["spec"]["replicas"]
        )
        for _, h in idle[: max(0, len(idle) - limit)]:
            del self._objects[("replicasets", ns, rss[h]["metadata"]["name"])]
        ann = meta.setdefault("annotations", {})
        revision = str(revisions[ro.template_hash])
        if ann.get(REVISION) == revision:
            return False
        ann[REVISION] = revision
        return True

    def _make_replicaset(self, dep: Obj, template_hash: str, revision: int) -> Obj:
        meta, spec = dep["metadata"], dep["spec"]
        template = copy.deepcopy(spec["template"])
        template.setdefault("metadata", {}).setdefault("labels", {})[POD_TEMPLATE_HASH] = template_hash
        labels = dict(template["metadata"]["labels"])
        selector = copy.deepcopy(spec.get("selector") or {"matchLabels": {}})
        selector.setdefault("matchLabels", {})[POD_TEMPLATE_HASH] = template_hash
        owner = {"apiVersion": "apps/v1", "kind": "Deployment", "name": meta["name"], "uid": meta["uid"],
                 "controller": True, "blockOwnerDeletion": True}
        rs_meta = self._new_meta(meta["namespace"], f"{meta['name']}-{template_hash}", labels, generation=1,
                                 annotations={REVISION: str(revision)}, ownerReferences=[owner])
        return {"kind": "ReplicaSet", "apiVersion": "apps/v1", "metadata": rs_meta,
                "spec": {"replicas": 0, "selector": selector, "template": template}, "status": {}}

    def _emit_event(self, obj: Obj, type_: str, reason: str, message: str, component: str) -> None:
        meta = obj["metadata"]
        self._store_event(meta["namespace"], obj.get("kind", ""), meta["name"], reason, message, type_=type_,
                          uid=meta.get("uid", ""), api_version=obj.get("apiVersion", ""), component=component)

    def _step_deployment(self, dep: Obj, ro: _Rollout) -> None:
        spec, status = dep["spec"], dep.setdefault("status", {})
        desired = int(spec.get("replicas", 1))
        generation = dep["metadata"].get("generation", 1)
        progressed = False
        if status.get("observedGeneration", 0) < generation:
            status["observedGeneration"] = generation
            progressed = True
        else:
            current = _template_hash(spec["template"])
            if not spec.get("paused") and current != ro.template_hash:
                self._observe_template(dep, ro)
                progressed = True
            elif not ro.stalled and ro.new_available < ro.new_count:
                ro.new_available += 1
                progressed = True
            elif ro.old > 0 and ro.new_available + ro.old > desired:
                ro.old -= 1
                progressed = True
            elif ro.new_count < desired and ro.new_count + ro.old < desired + 1:
                ro.new_count += 1
                progressed = True
            elif ro.new_count > desired:
                ro.new_count -= 1
                ro.new_available = min(ro.new_available, ro.new_count)
                progressed = True
            elif ro.old > 0 and ro.new_available >= desired:
                ro.old -= 1
                progressed = True
        if progressed:
            ro.last_progress = time.monotonic()
        self._refresh_deployment_status(dep, ro, bump=True, force=progressed)

    def _refresh_deployment_status(self, dep: Obj, ro: _Rollout, *, bump: bool, force: bool = False) -> None:
        """Recompute counters and conditions from the rollout state; bump resourceVersion if changed."""
        spec, meta = dep["spec"], dep["metadata"]
        before = copy.deepcopy(dep.get("status", {}))
        status: Obj = dict(before)
        desired = int(spec.get("replicas", 1))
        current = _template_hash(spec["template"])
        updated = ro.new_count if ro.template_hash == current else 0
        total = ro.new_count + ro.old
        available = ro.new_available + ro.old
        counters = {
            "replicas": total,
            "updatedReplicas": updated,
            "readyReplicas": available,
            "availableReplicas": available,
            "unavailableReplicas": max(0, total - available, desired - available),
        }
        for key, value in counters.items():
            if value:
                status[key] = value
            else:
                status.pop(key, None)  # omitempty, like the real API server
        rs_name = f"{meta['name']}-{ro.template_hash}"
        complete = (
            status.get("observedGeneration", 0) >= meta.get("generation", 1)
            and updated == desired
            and total == updated
            and available == updated
        )
        if available >= desired:
            avail_cond = ("True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
        else:
            avail_cond = ("False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability.")
        deadline = int(spec.get("progressDeadlineSeconds", 600))
        if spec.get("paused"):
            prog_cond = ("Unknown", "DeploymentPaused", "Deployment is paused")
        elif complete and not ro.forced_deadline:
            prog_cond = ("True", "NewReplicaSetAvailable", f'ReplicaSet "{rs_name}" has successfully progressed.')
        elif ro.forced_deadline or time.monotonic() - ro.last_progress > deadline:
            prog_cond = ("False", "ProgressDeadlineExceeded", f'ReplicaSet "{rs_name}" has timed out progressing.')
        else:
            prog_cond = ("True", "ReplicaSetUpdated", f'ReplicaSet "{rs_name}" is progressing.')
        old_conds = {c["type"]: c for c in before.get("conditions", [])}
        conds = []
        for ctype, (cstatus, reason, message) in (("Available", avail_cond), ("Progressing", prog_cond)):
            prev = old_conds.get(ctype)
            now = _now()
            if prev and (prev["status"], prev["reason"], prev["message"]) == (cstatus, reason, message):
                conds.append(prev)
                continue
            conds.append(
                {
                    "type": ctype,
                    "status": cstatus,
                    "lastUpdateTime": now,
                    "lastTransitionTime": prev["lastTransitionTime"] if prev and prev["status"] == cstatus else now,
                    "reason": reason,
                    "message": message,
                }
            )
        status["conditions"] = conds
        moved = self._sync_replicasets(dep, ro)
        if status != before or not bump or force or moved:
            dep["status"] = status
            if bump:
                meta["resourceVersion"] = self._next_rv()

    def _step_statefulset(self, sts: Obj, sr: _StsRollout) -> None:
        """One step of the StatefulSet controller: pods are replaced one at a time, highest ordinal first."""
        spec, status = sts["spec"], sts.setdefault("status", {})
        desired = int(spec.get("replicas", 1))
        current = _template_hash(spec["template"])
        if current != sr.update_hash:  # one sync observes the generation and the new revision together
            sr.update_hash, sr.updated = current, 0
            status["observedGeneration"] = sts["metadata"].get("generation", 1)
        elif status.get("observedGeneration", 0) < sts["metadata"].get("generation", 1):
            status["observedGeneration"] = sts["metadata"]["generation"]
        elif sr.stalled:
            pass
        elif sr.ready < desired:
            sr.ready += 1
        elif sr.ready > desired:
            sr.ready = desired
        elif sr.updated < self._sts_target(sts):
            sr.updated += 1
        elif sr.update_hash != sr.current_hash and sr.updated >= desired:
            sr.current_hash = sr.update_hash
        sr.updated = min(sr.updated, desired)
        self._refresh_statefulset_status(sts, sr)

    @staticmethod
    def _sts_target(sts: Obj) -> int:
        strategy = sts["spec"].get("updateStrategy") or {}
        partition = int((strategy.get("rollingUpdate") or {}).get("partition", 0) or 0)
        return max(0, int(sts["spec"].get("replicas", 1)) - partition)

    def _refresh_statefulset_status(self, sts: Obj, sr: _StsRollout) -> None:
        before = copy.deepcopy(sts.get("status", {}))
        name = sts["metadata"]["name"]
        desired = int(sts["spec"].get("replicas", 1))
        same = sr.update_hash == sr.current_hash
        counters = {
            "replicas": sr.ready,
            "readyReplicas": sr.ready,
            "availableReplicas": sr.ready,
            "currentReplicas": min(sr.ready, desired) if same else max(0, min(sr.ready, desired) - sr.updated),
            "updatedReplicas": min(sr.ready, desired) if same else sr.updated,
        }
        status: Obj = {k: v for k, v in before.items() if k not in counters}
        status.update({k: v for k, v in counters.items() if v})
        status["currentRevision"] = f"{name}-{sr.current_hash}"
        status["updateRevision"] = f"{name}-{sr.update_hash}"
        status["collisionCount"] = 0
        if status != before:
            sts["status"] = status
            sts["metadata"]["resourceVersion"] = self._next_rv()

    def _step_hpa(self, hpa: Obj) -> None:
        """One HPA sync: the target's replicas go to the recommendation clamped to [minReplicas, maxReplicas]."""
        meta, spec = hpa["metadata"], hpa["spec"]
        ref = spec.get("scaleTargetRef") or {}
        target = self._objects.get((_plural_of(str(ref.get("kind", ""))), meta["namespace"], str(ref.get("name"))))
        before = copy.deepcopy(hpa.get("status", {}))
        now = _now()
        lo, hi = int(spec.get("minReplicas", 1)), int(spec["maxReplicas"])
        conditions: list[Obj]
        status: Obj = {"currentReplicas": 0, "desiredReplicas": 0}
        if target is None:
            conditions = [{"type": "AbleToScale", "status": "False", "reason": "FailedGetScale",
                           "message": f'the HPA controller was unable to get the target\'s current scale: '
                                      f'{_plural_of(str(ref.get("kind", "")))}.apps "{ref.get("name")}" not found'}]
        else:
            current = int(target["spec"].get("replicas", 1))
            status["currentReplicas"] = current
            if current == 0:
                conditions = [{"type": "ScalingActive", "status": "False", "reason": "ScalingDisabled",
                               "message": "scaling is disabled since the replica count of the target is zero"}]
                status["desiredReplicas"] = 0
            else:
                wanted = self._hpa_recommendations.get((meta["namespace"], meta["name"]), current)
                desired = max(lo, min(hi, wanted))
                status["desiredReplicas"] = desired
                limited = desired != wanted
                conditions = [
                    {"type": "AbleToScale", "status": "True", "reason": "ReadyForNewScale",
                     "message": "recommended size matches current size"},
                    {"type": "ScalingActive", "status": "True", "reason": "ValidMetricFound",
                     "message": "the HPA was able to successfully calculate a replica count from cpu resource "
                                "utilization (percentage of request)"},
                    {"type": "ScalingLimited", "status": "True" if limited else "False",
                     "reason": ("TooFewReplicas" if wanted < lo else "TooManyReplicas") if limited
                     else "DesiredWithinRange",
                     "message": "the desired replica count is " + (
                         ("less than the minimum replica count" if wanted < lo
                          else "more than the maximum replica count") if limited
                         else "within the acceptable range")},
                ]
                if desired != current:
                    self._hpa_scale(target, desired, hpa)
                    status["lastScaleTime"] = now
                    status["currentReplicas"] = current
        if before.get("lastScaleTime") and "lastScaleTime" not in status:
            status["lastScaleTime"] = before["lastScaleTime"]
        old = {c["type"]: c for c in before.get("conditions", [])}
        for c in conditions:
            prev = old.get(c["type"])
            c["lastTransitionTime"] = prev["lastTransitionTime"] if prev and prev["status"] == c["status"] else now
        status["conditions"] = conditions
        status["observedGeneration"] = meta.get("generation", 1)
        if status != before:
            hpa["status"] = status
            meta["resourceVersion"] = self._next_rv()

    def _hpa_scale(self, target: Obj, replicas: int, hpa: Obj) -> None:
        meta = target["metadata"]
        target["spec"]["replicas"] = replicas
        meta["generation"] = int(meta.get("generation", 1)) + 1
        meta["resourceVersion"] = self._next_rv()
        key = (meta["namespace"], meta["name"])
        if target.get("kind") == "Deployment" and key in self._rollouts:
            self._refresh_deployment_status(target, self._rollouts[key], bump=False)
        self._emit_event(hpa, "Normal", "SuccessfulRescale", f"New size: {replicas}; reason: cpu resource "
                         "utilization (percentage of request) above target", "horizontal-pod-autoscaler")

    def _step_cronjob(self, cj: Obj) -> None:
        """The CronJob controller's history limits (cleanupFinishedJobs).

        Only Jobs the CronJob *controls* count: ``metav1.GetControllerOf(job)`` naming the CronJob,
        i.e. an ownerReference with ``controller: true``. Finished Jobs beyond
        ``successfulJobsHistoryLimit`` / ``failedJobsHistoryLimit`` are deleted, oldest start first.
        """
        meta, spec = cj["metadata"], cj["spec"]
        ns = meta["namespace"]
        finished: dict[str, list[Obj]] = {"Complete": [], "Failed": []}
        for (res, jns, _), job in list(self._objects.items()):
            if res != "jobs" or jns != ns:
                continue
            ref = next((r for r in job["metadata"].get("ownerReferences") or [] if r.get("controller")), None)
            if ref is None or ref.get("name") != meta["name"]:
                continue
            for cond in job.get("status", {}).get("conditions", []):
                if cond.get("type") in finished and cond.get("status") == "True":
                    finished[cond["type"]].append(job)
        limits = {"Complete": spec.get("successfulJobsHistoryLimit", 3),
                  "Failed": spec.get("failedJobsHistoryLimit", 1)}
        for kind, jobs in finished.items():
            jobs.sort(key=lambda j: (j.get("status", {}).get("startTime", ""), j["metadata"]["creationTimestamp"]))
            for job in jobs[: max(0, len(jobs) - int(limits[kind]))]:
                del self._objects[("jobs", ns, job["metadata"]["name"])]
                self._emit_event(cj, "Normal", "SuccessfulDelete", f"Deleted job {job['metadata']['name']}",
                                 "cronjob-controller")

    def _step_job(self, namespace: str, name: str, job: Obj) -> None:
        status = job.setdefault("status", {})
        if job["spec"].get("suspend") or any(
            c.get("type") in ("Complete", "Failed") for c in status.get("conditions", [])
        ):
            return
        outcome = self._job_outcomes.get((namespace, name), self.job_outcome)
        now = _now()
        if "startTime" not in status:
            status.update({"startTime": now, "active": 1})
        elif outcome == "complete":
            status.pop("active", None)
            status.update(
                {
                    "succeeded": 1,
                    "completionTime": now,
                    "conditions": [
                        {
                            "type": "SuccessCriteriaMet",
                            "status": "True",
                            "lastProbeTime": now,
                            "lastTransitionTime": now,
                        },
                        {"type": "Complete", "status": "True", "lastProbeTime": now, "lastTransitionTime": now},
                    ],
                }
            )
        elif outcome == "fail":
            status.pop("active", None)
            status.update(
                {
                    "failed": 1,
                    "conditions": [
                        {
                            "type": "Failed",
                            "status": "True",
                            "lastProbeTime": now,
                            "lastTransitionTime": now,
                            "reason": "BackoffLimitExceeded",
                            "message": "Job has reached the specified backoff limit",
                        }
                    ],
                }
            )
        else:
            return
        job["metadata"]["resourceVersion"] = self._next_rv()

    # ------------------------------------------------------------------ HTTP
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        content_type = request.headers.get("Content-Type")
        body: JSON = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
        headers = dict(request.headers)
        query = dict(request.query)
        with self._lock:
            index = len(self.requests)
            self.requests.append(KubeRequest(request.method, request.path, query, content_type, body, headers))
        stall = max([self.delay, *(sec for frag, sec in self.path_delays if frag in request.path)])
        if stall:
            await asyncio.sleep(stall)
        try:
            with self._lock:
                status, payload, extra_headers = self._dispatch(
                    request.method, request.path, query, headers, content_type, raw
                )
        except ApiError as err:
            status, payload, extra_headers = err.code, err.status(), err.headers
        except Exception as exc:
            self.internal_errors.append(traceback.format_exc())
            bug = ApiError(500, "InternalError", f"kube stand-in bug: {exc!r}")
            status, payload, extra_headers = 500, bug.status(), {}
        with self._lock:
            rec = self.requests[index]
            self.requests[index] = KubeRequest(
                rec.method, rec.path, rec.query, rec.content_type, rec.body, rec.headers, status
            )
        if isinstance(payload, str):
            return web.Response(status=status, text=payload, content_type="text/plain", headers=extra_headers)
        return web.json_response(payload, status=status, headers=extra_headers)

    def _dispatch(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        headers: Mapping[str, str],
        content_type: str | None,
        raw: bytes,
    ) -> tuple[int, JSON, dict[str, str]]:
        if headers.get("Authorization") != f"Bearer {self.token}":
            raise ApiError(401, "Unauthorized", "Unauthorized")
        for fault in self._faults:
            if fault.kind == "fail" and fault.remaining > 0 and fault.matches(method, path):
                fault.remaining -= 1
                reason = _REASON_BY_CODE.get(fault.status, "InternalError")
                extra = {"Retry-After": "1"} if fault.status in (429, 503) else {}
                raise ApiError(
                    fault.status,
                    reason,
                    f"injected failure ({fault.status}) by the kube stand-in",
                    {"causes": [{"message": "injected failure"}]},
                    extra,
                )
        if path in ("/version", "/version/"):
            return 200, {"major": "1", "minor": "30", "gitVersion": "v1.30.0-standin", "platform": "linux/amd64"}, {}
        res, modeled, namespace, name, sub = self._route(path)
        verb = self._verb(method, name, query)
        self._authorize(res, verb, namespace, name, sub)
        if not modeled:
            raise _not_found()
        allowed = res.subresources.get(sub, frozenset()) if sub else res.verbs
        if verb not in allowed:
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        if verb in ("update", "patch"):
            for fault in self._faults:
                if fault.kind == "conflict" and fault.remaining > 0 and fault.matches(method, path):
                    fault.remaining -= 1
                    raise res.conflict(name or "")
        dry_run = self._dry_run(query)
        body = self._decode(raw, verb, content_type)
        if verb == "list":
            return 200, self._list(res, namespace, query), {}
        assert namespace is not None
        if verb == "create":
            return 201, self._create(res, namespace, body, dry_run), {}
        assert name is not None
        if verb == "get":
            return 200, self._get(res, namespace, name, sub, query), {}
        if verb == "delete":
            return 200, self._delete(res, namespace, name, body, query, dry_run), {}
        if verb == "update":
            return 200, self._update(res, namespace, name, sub, body, dry_run), {}
        return 200, self._patch(res, namespace, name, sub, body, content_type, dry_run), {}

    def _route(self, path: str) -> tuple[_Res, bool, str | None, str | None, str | None]:
        """Split an API path; the bool says whether the stand-in models that resource and subresource.

        Unmodelled resources still get a placeholder so that RBAC is checked first (a real API
        server answers 403 for a forbidden ``secrets`` read, not 404).
        """
        parts = [p for p in path.split("/") if p]
        if len(parts) >= 2 and parts[0] == "api":
            group, version, rest = "", parts[1], parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise _not_found()
        namespace: str | None = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            raise _not_found()
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        res = RESOURCES.get((group, version, rest[0]))
        if res is None:
            return _Res(group, version, rest[0], "", frozenset()), False, namespace, name, sub
        modeled = (sub is None or sub in res.subresources) and (name is None or namespace is not None)
        return res, modeled, namespace, name, sub

    @staticmethod
    def _verb(method: str, name: str | None, query: Mapping[str, str]) -> str:
        if method in ("GET", "HEAD"):
            if name is None:
                return "watch" if query.get("watch") in ("true", "1") else "list"
            return "get"
        if method == "POST":
            return "create" if name is None else "create-on-name"
        if method == "PUT":
            return "update"
        if method == "PATCH":
            return "patch"
        if method == "DELETE":
            return "delete" if name is not None else "deletecollection"
        return method.lower()

    def _authorize(self, res: _Res, verb: str, namespace: str | None, name: str | None, sub: str | None) -> None:
        resource = f"{res.plural}/{sub}" if sub else res.plural
        for rule in self.rules:
            groups = rule.get("apiGroups")
            if groups is not None and "*" not in groups and res.group not in groups:
                continue
            resources = rule.get("resources", [])
            if not ("*" in resources or resource in resources or (sub is not None and f"*/{sub}" in resources)):
                continue
            verbs = rule.get("verbs", [])
            if "*" not in verbs and verb not in verbs:
                continue
            names = rule.get("resourceNames")
            if names and (name is None or name not in names):
                continue
            namespaces = rule.get("namespaces")
            if namespaces and (namespace is None or namespace not in namespaces):
                continue
            return
        subject = f'{res.qualified} "{name}"' if name else res.qualified
        scope = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
        raise ApiError(
            403,
            "Forbidden",
            f'{subject} is forbidden: User "{self.user}" cannot {verb} resource "{resource}" '
            f'in API group "{res.group}" {scope}',
            res.details(name),
        )

    @staticmethod
    def _dry_run(query: Mapping[str, str]) -> bool:
        value = query.get("dryRun")
        if value is None:
            return False
        if value != "All":
            raise ApiError(400, "BadRequest", f'Invalid dryRun value: "{value}"; valid values are: All')
        return True

    @staticmethod
    def _decode(raw: bytes, verb: str, content_type: str | None) -> JSON:
        if not raw:
            return None
        if verb not in ("create", "update", "patch", "delete"):
            return None
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise ApiError(400, "BadRequest", f"couldn't get version/kind; json parse error: {exc}") from None

    # ------------------------------------------------------------------ verbs
    def _key(self, res: _Res, namespace: str, name: str) -> tuple[str, str, str]:
        prefix = "" if res.group != "events.k8s.io" else "events.k8s.io:"
        return (prefix + res.plural, namespace, name)

    def _stored(self, res: _Res, namespace: str, name: str) -> Obj:
        obj = self._objects.get(self._key(res, namespace, name))
        if obj is None:
            raise res.not_found(name)
        return obj

    def _list(self, res: _Res, namespace: str | None, query: Mapping[str, str]) -> Obj:
        label_pred = parse_label_selector(query.get("labelSelector", ""))
        field_pred = _field_predicate(res, query.get("fieldSelector", ""))
        items = []
        key_res = self._key(res, "", "")[0]
        for (r, ns, _), obj in sorted(self._objects.items()):
            if r != key_res or (namespace is not None and ns != namespace):
                continue
            if label_pred(obj["metadata"].get("labels", {})) and field_pred(obj):
                item = copy.deepcopy(obj)
                item.pop("kind", None)
                item.pop("apiVersion", None)
                items.append(item)
        limit = query.get("limit")
        if limit and limit.isdigit() and int(limit) > 0:
            items = items[: int(limit)]
        return {
            "kind": f"{res.kind}List",
            "apiVersion": res.api_version,
            "metadata": {"resourceVersion": str(self._rv)},
            "items": items,
        }

    def _get(self, res: _Res, namespace: str, name: str, sub: str | None, query: Mapping[str, str]) -> JSON:
        obj = self._stored(res, namespace, name)
        if sub == "scale":
            return self._scale_of(obj)
        if sub == "log":
            container = query.get("container")
            names = [c["name"] for c in obj["spec"].get("containers", [])]
            if container is None and len(names) > 1:
                raise ApiError(400, "BadRequest", f"a container name must be specified for pod {name}, "
                               f"choose one of: [{' '.join(names)}]")
            container = container or names[0]
            if container not in names:
                raise ApiError(400, "BadRequest", f"container {container} is not valid for pod {name}")
            if query.get("previous") in ("true", "1"):
                cstatus: Obj = next(
                    (c for c in obj["status"].get("containerStatuses", []) if c["name"] == container), {}
                )
                if not (cstatus.get("lastState") or {}).get("terminated"):
                    raise ApiError(400, "BadRequest",
                                   f'previous terminated container "{container}" in pod "{name}" not found')
                text = self._previous_logs.get((namespace, name), "")
            else:
                text = self._pod_logs.get((namespace, name), "")
            tail = query.get("tailLines")
            if tail and tail.isdigit():
                lines = text.splitlines(keepends=True)
                text = "".join(lines[-int(tail) :]) if int(tail) else ""
            return text
        return copy.deepcopy(obj)

    @staticmethod
    def _scale_of(dep: Obj) -> Obj:
        meta = dep["metadata"]
        selector = ",".join(f"{k}={v}" for k, v in sorted(dep["spec"]["selector"].get("matchLabels", {}).items()))
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta["uid"],
                "resourceVersion": meta["resourceVersion"],
                "creationTimestamp": meta["creationTimestamp"],
            },
            "spec": {"replicas": int(dep["spec"].get("replicas", 1))},
            "status": {"replicas": int(dep.get("status", {}).get("replicas", 0)), "selector": selector},
        }

    def _check_body_identity(self, res: _Res, body: JSON, namespace: str, name: str | None) -> Obj:
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the object provided is unrecognized (must be of type " + res.kind + ")")
        kind, api_version = body.get("kind"), body.get("apiVersion")
        if (kind is not None and kind != res.kind) or (api_version is not None and api_version != res.api_version):
            raise ApiError(
                400,
                "BadRequest",
                f"the API version in the data ({api_version}) does not match the expected API version "
                f"({res.api_version})"
                if api_version != res.api_version
                else f"the kind in the data ({kind}) does not match the expected kind ({res.kind})",
            )
        meta = body.get("metadata") or {}
        if not isinstance(meta, dict):
            raise ApiError(400, "BadRequest", "metadata must be an object")
        if meta.get("namespace") not in (None, "", namespace):
            raise ApiError(
                400,
                "BadRequest",
                "the namespace of the provided object does not match the namespace sent on the request",
            )
        if name is not None and meta.get("name") not in (None, name):
            raise ApiError(
                400,
                "BadRequest",
                f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})",
            )
        return body

    def _create(self, res: _Res, namespace: str, body: JSON, dry_run: bool) -> Obj:
        obj = copy.deepcopy(self._check_body_identity(res, body, namespace, None))
        meta = obj.setdefault("metadata", {})
        if not meta.get("name"):
            if meta.get("generateName"):
                meta["name"] = meta["generateName"] + _suffix()
            else:
                raise res.invalid("", [("metadata.name", "Required value: name or generateName is required")])
        name = meta["name"]
        self._check_owner_references(res, namespace, name, meta)
        causes = self._validate_name(name)
        if res.plural == "jobs":
            causes += self._validate_job(obj, name)
        if causes:
            raise res.invalid(name, causes)
        if self._key(res, namespace, name) in self._objects:
            raise ApiError(409, "AlreadyExists", f'{res.qualified} "{name}" already exists', res.details(name))
        obj["kind"], obj["apiVersion"] = res.kind, res.api_version
        meta.update(
            {
                "namespace": namespace,
                "uid": str(uuid.uuid4()),
                "creationTimestamp": _now(),
                "resourceVersion": "0",
            }
        )
        meta.pop("deletionTimestamp", None)
        if res.has_generation:
            meta["generation"] = 1
        if res.has_status:
            obj["status"] = {}
        if res.plural == "jobs":
            self._default_job(obj)
        if res.plural == "deployments":
            self._validate_deployment(res, obj, None)
        if dry_run:
            return obj
        meta["resourceVersion"] = self._next_rv()
        self._objects[self._key(res, namespace, name)] = obj
        if res.plural == "deployments":
            self._rollouts[(namespace, name)] = _Rollout(_template_hash(obj["spec"]["template"]), 0, 0)
        return copy.deepcopy(obj)

    def _check_owner_references(self, res: _Res, namespace: str, name: str, meta: Obj) -> None:
        """OwnerReferencesPermissionEnforcement: blockOwnerDeletion needs update on the owner's finalizers."""
        if not self.owner_references_permission_enforcement:
            return
        for ref in meta.get("ownerReferences") or []:
            if not ref.get("blockOwnerDeletion"):
                continue
            group = str(ref.get("apiVersion", "")).rpartition("/")[0]
            owner = _Res(group, "v1", _plural_of(str(ref.get("kind", ""))), str(ref.get("kind", "")), frozenset())
            try:
                self._authorize(owner, "update", namespace, str(ref.get("name", "")), "finalizers")
            except ApiError:
                raise ApiError(
                    403, "Forbidden",
                    f'{res.qualified} "{name}" is forbidden: cannot set blockOwnerDeletion if an ownerReference refers '
                    "to a resource you can't set finalizers on: , <nil>",
                    res.details(name),
                ) from None

    @staticmethod
    def _validate_name(name: str) -> list[tuple[str, str]]:
        if len(name) > 253:
            return [("metadata.name", f'Invalid value: "{name}": must be no more than 253 characters')]
        if not _DNS1123_SUBDOMAIN_RE.fullmatch(name):
            return [("metadata.name", f'Invalid value: "{name}": {_DNS1123_SUBDOMAIN_MSG}')]
        return []

    @staticmethod
    def _validate_job(job: Obj, name: str) -> list[tuple[str, str]]:
        causes: list[tuple[str, str]] = []
        if len(name) > 63:
            causes.append(("metadata.name", f'Invalid value: "{name}": must be no more than 63 characters'))
        spec = job.get("spec")
        if not isinstance(spec, dict):
            return [*causes, ("spec.template.spec.containers", "Required value")]
        template = spec.get("template")
        pod_spec = template.get("spec") if isinstance(template, dict) else None
        if not isinstance(pod_spec, dict):
            return [*causes, ("spec.template.spec.containers", "Required value")]
        containers = pod_spec.get("containers")
        if not isinstance(containers, list) or not containers:
            causes.append(("spec.template.spec.containers", "Required value"))
        else:
            for i, c in enumerate(containers):
                if not isinstance(c, dict) or not c.get("name"):
                    causes.append((f"spec.template.spec.containers[{i}].name", "Required value"))
                if not isinstance(c, dict) or not c.get("image"):
                    causes.append((f"spec.template.spec.containers[{i}].image", "Required value"))
        policy = pod_spec.get("restartPolicy")
        if policy is None or policy == "":
            causes.append(("spec.template.spec.restartPolicy", 'Required value: valid values: "OnFailure", "Never"'))
        elif policy not in ("OnFailure", "Never"):
            causes.append(
                (
                    "spec.template.spec.restartPolicy",
                    f'Unsupported value: "{policy}": supported values: "OnFailure", "Never"',
                )
            )
        return causes

    @staticmethod
    def _default_job(job: Obj) -> None:
        meta, spec = job["metadata"], job["spec"]
        uid, name = meta["uid"], meta["name"]
        auto = {
            "batch.kubernetes.io/controller-uid": uid,
            "batch.kubernetes.io/job-name": name,
            "controller-uid": uid,
            "job-name": name,
        }
        meta.setdefault("labels", {}).update(auto)
        tmeta = spec["template"].setdefault("metadata", {})
        tmeta.setdefault("labels", {}).update(auto)
        spec.setdefault("selector", {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}})
        spec.setdefault("backoffLimit", 6)
        spec.setdefault("completions", 1)
        spec.setdefault("parallelism", 1)
        spec.setdefault("completionMode", "NonIndexed")
        spec.setdefault("suspend", False)

    def _validate_deployment(self, res: _Res, new: Obj, old: Obj | None) -> None:
        name = new["metadata"]["name"]
        spec = new.get("spec")
        causes: list[tuple[str, str]] = []
        if not isinstance(spec, dict):
            raise res.invalid(name, [("spec", "Required value")])
        replicas = spec.get("replicas", 1)
        if not isinstance(replicas, int) or isinstance(replicas, bool):
            raise ApiError(
                400,
                "BadRequest",
                f'Deployment in version "v1" cannot be handled as a Deployment: json: cannot unmarshal '
                f"{type(replicas).__name__} into Go struct field DeploymentSpec.spec.replicas of type int32",
            )
        if replicas < 0:
            causes.append(("spec.replicas", f"Invalid value: {replicas}: must be greater than or equal to 0"))
        selector = (spec.get("selector") or {}).get("matchLabels") or {}
        template = spec.get("template") or {}
        tlabels = (template.get("metadata") or {}).get("labels") or {}
        if not selector:
            causes.append(("spec.selector", "Required value"))
        elif any(tlabels.get(k) != v for k, v in selector.items()):
            causes.append(
                (
                    "spec.template.metadata.labels",
                    f"Invalid value: {json.dumps(tlabels, sort_keys=True)}: "
                    "`selector` does not match template `labels`",
                )
            )
        if old is not None and spec.get("selector") != old["spec"].get("selector"):
            causes.append(("spec.selector", f"Invalid value: {json.dumps(spec.get('selector'))}: field is immutable"))
        containers = (template.get("spec") or {}).get("containers")
        if not isinstance(containers, list) or not containers:
            causes.append(("spec.template.spec.containers", "Required value"))
        if causes:
            raise res.invalid(name, causes)

    @staticmethod
    def _validate_statefulset(res: _Res, new: Obj, old: Obj) -> None:
        """The API server's StatefulSet update rule: only some spec fields may change."""
        name = new["metadata"]["name"]
        spec, old_spec = new.get("spec") or {}, old.get("spec") or {}
        replicas = spec.get("replicas", 1)
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise res.invalid(
                name, [("spec.replicas", f"Invalid value: {replicas}: must be greater than or equal to 0")]
            )
        mutable = {"replicas", "ordinals", "template", "updateStrategy", "persistentVolumeClaimRetentionPolicy",
                   "minReadySeconds"}
        if {k: v for k, v in spec.items() if k not in mutable} != {
            k: v for k, v in old_spec.items() if k not in mutable
        }:
            raise res.invalid(name, [("spec", "Forbidden: updates to statefulset spec for fields other than "
                                      "'replicas', 'ordinals', 'template', 'updateStrategy', "
                                      "'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden")])

    @staticmethod
    def _validate_hpa(res: _Res, new: Obj) -> None:
        """autoscaling validation of minReplicas and maxReplicas."""
        spec = new.get("spec") or {}
        lo_raw, hi_raw = spec.get("minReplicas", 1), spec.get("maxReplicas")
        causes: list[tuple[str, str]] = []
        for field_name, value in (("minReplicas", lo_raw), ("maxReplicas", hi_raw)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise ApiError(400, "BadRequest", f'HorizontalPodAutoscaler in version "v2" cannot be handled as a '
                               f"HorizontalPodAutoscaler: json: cannot unmarshal {type(value).__name__} into Go struct "
                               f"field HorizontalPodAutoscalerSpec.spec.{field_name} of type int32")
        lo, hi = int(lo_raw), int(hi_raw or 0)
        if lo < 1:
            causes.append(("spec.minReplicas", f"Invalid value: {lo}: must be greater than or equal to 1"))
        if hi < 1:
            causes.append(("spec.maxReplicas", f"Invalid value: {hi}: must be greater than 0"))
        elif hi < lo:
            causes.append(("spec.maxReplicas", f"Invalid value: {hi}: must be greater than or equal to `minReplicas`"))
        if causes:
            raise res.invalid(new["metadata"]["name"], causes)

    def _commit(self, res: _Res, namespace: str, name: str, old: Obj, new: Obj, dry_run: bool) -> Obj:
        """Apply server-side rules to an updated object and store it (unless dry run)."""
        new_meta = new.setdefault("metadata", {})
        if not isinstance(new_meta, dict):
            raise ApiError(400, "BadRequest", "metadata must be an object")
        rv = new_meta.get("resourceVersion")
        if rv not in (None, "") and rv != old["metadata"]["resourceVersion"]:
            raise res.conflict(name)
        new["kind"], new["apiVersion"] = res.kind, res.api_version
        for k in ("name", "namespace", "uid", "creationTimestamp", "generation"):
            if k in old["metadata"]:
                new_meta[k] = old["metadata"][k]
            else:
                new_meta.pop(k, None)
        new_meta["resourceVersion"] = old["metadata"]["resourceVersion"]
        if res.has_status:
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
            else:
                new.pop("status", None)
        if res.plural == "deployments":
            self._validate_deployment(res, new, old)
        if res.plural == "statefulsets":
            self._validate_statefulset(res, new, old)
        if res.plural == "horizontalpodautoscalers":
            self._validate_hpa(res, new)
        if res.plural == "jobs":
            causes = self._validate_job(new, name)
            if old["spec"].get("template") != new.get("spec", {}).get("template"):
                causes.append(("spec.template", "Invalid value: field is immutable"))
            if causes:
                raise res.invalid(name, causes)
        if res.has_generation and new.get("spec") != old.get("spec"):
            new_meta["generation"] = int(old["metadata"].get("generation", 1)) + 1
        if new == old:
            return copy.deepcopy(old)
        if dry_run:
            return new
        new_meta["resourceVersion"] = self._next_rv()
        self._objects[self._key(res, namespace, name)] = new
        if res.plural == "deployments":
            ro = self._rollouts.get((namespace, name))
            if ro is not None:
                if new["spec"].get("paused") != old["spec"].get("paused"):
                    ro.last_progress = time.monotonic()
                self._refresh_deployment_status(new, ro, bump=False)
        if res.plural == "statefulsets" and (namespace, name) in self._sts:
            self._refresh_statefulset_status(new, self._sts[(namespace, name)])
        return copy.deepcopy(new)

    def _update(self, res: _Res, namespace: str, name: str, sub: str | None, body: JSON, dry_run: bool) -> Obj:
        old = self._stored(res, namespace, name)
        if sub == "scale":
            return self._apply_scale(res, namespace, name, old, body, dry_run)
        new = copy.deepcopy(self._check_body_identity(res, body, namespace, name))
        return self._commit(res, namespace, name, old, new, dry_run)

    def _apply_patch(self, original: JSON, body: JSON, content_type: str | None) -> JSON:
        ctype = (content_type or "").split(";")[0].strip().lower()
        if ctype == "application/strategic-merge-patch+json":
            if not isinstance(body, dict):
                raise ApiError(
                    400,
                    "BadRequest",
                    "json: cannot unmarshal array into Go value of type map[string]interface {}",
                )
            return strategic_merge(original, body)
        if ctype == "application/merge-patch+json":
            return json_merge_patch(original, body)
        if ctype == "application/json-patch+json":
            return json_patch(original, body)
        raise ApiError(
            415,
            "UnsupportedMediaType",
            f"the body of the request was in an unknown format - accepted media types include: "
            f"application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, "
            f'application/strategic-merge-patch+json (got "{content_type}")',
        )

    def _patch(
        self,
        res: _Res,
        namespace: str,
        name: str,
        sub: str | None,
        body: JSON,
        content_type: str | None,
        dry_run: bool,
    ) -> Obj:
        old = self._stored(res, namespace, name)
        if body is None:
            raise ApiError(400, "BadRequest", "the body of the request is empty")
        if sub == "scale":
            patched_scale = self._apply_patch(self._scale_of(old), body, content_type)
            return self._apply_scale(res, namespace, name, old, patched_scale, dry_run)
        patched = self._apply_patch(copy.deepcopy(old), body, content_type)
        if not isinstance(patched, dict):
            raise ApiError(422, "Invalid", "the patch produced something that is not an object")
        # A resourceVersion that the patch itself carries is a precondition.
        patch_rv = _dig(body, "metadata.resourceVersion") if isinstance(body, dict) else None
        if patch_rv is not None and patch_rv != old["metadata"]["resourceVersion"]:
            raise res.conflict(name)
        patched.setdefault("metadata", {})["resourceVersion"] = (
            patched.get("metadata", {}).get("resourceVersion") or old["metadata"]["resourceVersion"]
        )
        return self._commit(res, namespace, name, old, patched, dry_run)

    def _apply_scale(self, res: _Res, namespace: str, name: str, dep: Obj, scale: JSON, dry_run: bool) -> Obj:
        if not isinstance(scale, dict):
            raise ApiError(400, "BadRequest", "the object provided is unrecognized (must be of type Scale)")
        rv = _dig(scale, "metadata.resourceVersion")
        if rv not in (None, "") and rv != dep["metadata"]["resourceVersion"]:
            raise res.conflict(name)
        replicas = _dig(scale, "spec.replicas")
        if replicas is None:
            replicas = 0
        if not isinstance(replicas, int) or isinstance(replicas, bool):
            raise ApiError(
                400,
                "BadRequest",
                'Scale in version "v1" cannot be handled as a Scale: json: '
                "cannot unmarshal into Go struct field ScaleSpec.spec.replicas of type int32",
            )
        if replicas < 0:
            raise ApiError(
                422,
                "Invalid",
                f'Scale.autoscaling "{name}" is invalid: spec.replicas: Invalid value: {replicas}: '
                "must be greater than or equal to 0",
                {
                    "name": name,
                    "group": "autoscaling",
                    "kind": "Scale",
                    "causes": [
                        {
                            "reason": "FieldValueInvalid",
                            "field": "spec.replicas",
                            "message": f"Invalid value: {replicas}: must be greater than or equal to 0",
                        }
                    ],
                },
            )
        new = copy.deepcopy(dep)
        new["spec"]["replicas"] = replicas
        return self._scale_of(self._commit(res, namespace, name, dep, new, dry_run))

    def _delete(self, res: _Res, namespace: str, name: str, body: JSON, query: Mapping[str, str], dry_run: bool) -> Obj:
        obj = self._stored(res, namespace, name)
        precondition = _dig(body, "preconditions.resourceVersion") if isinstance(body, dict) else None
        if precondition is not None and precondition != obj["metadata"]["resourceVersion"]:
            raise res.conflict(name)
        uid_pre = _dig(body, "preconditions.uid") if isinstance(body, dict) else None
        if uid_pre is not None and uid_pre != obj["metadata"]["uid"]:
            raise res.conflict(name)
        if res.plural == "pods":
            grace = query.get("gracePeriodSeconds") or (
                str(body.get("gracePeriodSeconds")) if isinstance(body, dict) and "gracePeriodSeconds" in body else None
            )
            answer = copy.deepcopy(obj)
            answer["metadata"]["deletionTimestamp"] = _now()
            answer["metadata"]["deletionGracePeriodSeconds"] = int(grace) if grace and grace.isdigit() else 30
            if not dry_run:
                answer["metadata"]["resourceVersion"] = self._next_rv()
                del self._objects[self._key(res, namespace, name)]
                self._pod_logs.pop((namespace, name), None)
                self._previous_logs.pop((namespace, name), None)
                self._respawn(obj)
            return answer
        if not dry_run:
            del self._objects[self._key(res, namespace, name)]
            if res.plural == "deployments":
                self._rollouts.pop((namespace, name), None)
                for rs in self._replicasets_of(obj).values():  # the garbage collector's cascade
                    del self._objects[("replicasets", namespace, rs["metadata"]["name"])]
            if res.plural == "statefulsets":
                self._sts.pop((namespace, name), None)
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": {**res.details(name), "uid": obj["metadata"]["uid"]},
        }

    def _respawn(self, pod: Obj) -> None:
        owners = pod["metadata"].get("ownerReferences") or []
        if not self.respawn_pods or not any(o.get("kind") == "ReplicaSet" for o in owners):
            return
        meta = pod["metadata"]
        prefix = meta.get("generateName") or meta["name"].rsplit("-", 1)[0] + "-"
        name = prefix + _suffix()
        container = pod["spec"]["containers"][0]
        new = self._make_pod(
            meta["namespace"],
            name,
            meta.get("labels", {}),
            "Running",
            True,
            0,
            container["image"],
            pod["spec"].get("nodeName", "node-1"),
            copy.deepcopy(owners),
            generate_name=prefix,
        )
        new["spec"]["containers"][0]["name"] = container["name"]
        new["status"]["containerStatuses"][0]["name"] = container["name"]
        self._objects[("pods", meta["namespace"], name)] = new
        self._pod_logs[(meta["namespace"], name)] = ""

    def pods(self, namespace: str) -> list[Obj]:
        """Snapshots of the Pods in ``namespace``."""
        return self.list_objects("pods", namespace)

    def jobs(self, namespace: str) -> list[Obj]:
        """Snapshots of the Jobs in ``namespace``."""
        return self.list_objects("jobs", namespace)

    def iter_requests(self) -> Iterator[KubeRequest]:
        """A snapshot iterator over every request received so far."""
        with self._lock:
            return iter(list(self.requests))


def write_kubeconfig(
    path: str | Path, server: str, token: str, *, namespace: str = "default", context: str = "standin"
) -> Path:
    """Write a kubeconfig for ``server`` (plain http) authenticating with a bearer ``token``."""
    path = Path(path)
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": context, "cluster": {"server": server}}],
        "users": [{"name": context, "user": {"token": token}}],
        "contexts": [{"name": context, "context": {"cluster": context, "user": context, "namespace": namespace}}],
        "current-context": context,
        "preferences": {},
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path
