"""The runbook file schema (``runbooks/*.yaml``), validated with ``FILE:LINE`` for every problem.

::

    name: restart-model-api
    description: ...
    match: ['alertname="ModelServiceDown"', 'deployment=~".+"']   # Alertmanager matchers, all must match
    when: "{{ labels.drift_share | float > 0.3 }}"                 # optional extra condition (Jinja2)
    target: {kind: Deployment, namespace: "{{ labels.namespace }}", name: "{{ labels.deployment }}"}
    guards:
      allowed_namespaces: [prod, staging]     # required whenever there is a target
      cooldown: 30m                           # per runbook and target
      max_runs: {count: 3, window: 6h}        # per runbook and target
      require_approval: false
      approval_timeout: 1h
      approvers: []                           # who may approve (default: remediation.approvers, else anyone)
      step_timeout: 5m
      dry_run: false                          # plan only, whatever the global switch says
    evidence: {timeout: 5s, required: false, log_lines: 20}   # what the API says, before any change
    steps: [{action: rollout_restart}, {action: wait_rollout, timeout: 5m}]
    on_failure: [{action: notify, receiver: console}]

Checked when the configuration loads: unknown actions and keys, missing ``max_replicas`` ceilings,
templates that do not parse or use unknown variables, literal names that are not valid Kubernetes
names, namespaces (literal, or pinned by an ``=`` matcher) outside ``allowed_namespaces``, actions
whose target kind does not fit, ``notify`` steps naming unknown receivers, and a ``when:`` that reads
``evidence`` without a target evidence can be gathered for.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator

from alert_router.configbase import ConfigModel
from alert_router.durations import Duration
from alert_router.errors import Problem
from alert_router.matchers import Matcher, MatchOp, error_location, parse_matcher_list, validate_matcher_list
from alert_router.remediation.actions import REGISTRY, ActionParams
from alert_router.remediation.evidence import EVIDENCE_KINDS, EvidenceSettings
from alert_router.remediation.templating import (
    CONDITION_VARS,
    FAILURE_VARS,
    STEP_VARS,
    TemplateProblem,
    check_condition,
    check_template,
    check_value,
    condition_variables,
    is_template,
    name_problem,
    namespace_problem,
)
from alert_router.yamlfile import LineMap, YamlDocument

TARGET_KINDS = ("Deployment", "StatefulSet", "CronJob", "Pod")


class MaxRuns(ConfigModel):
    """At most ``count`` runs per target within ``window``."""

    count: int = Field(ge=1)
    window: Duration = Field(gt=0)


class Guards(ConfigModel):
    """What stops a runbook from doing harm."""

    allowed_namespaces: list[str] = Field(default_factory=list)
    cooldown: Duration = 900.0
    max_runs: MaxRuns = MaxRuns(count=3, window=6 * 3600.0)
    require_approval: bool = False
    approval_timeout: Duration | None = Field(default=None, gt=0)
    approvers: list[str] = Field(default_factory=list)
    step_timeout: Duration | None = Field(default=None, gt=0)
    dry_run: bool = False


class RunbookEvidence(EvidenceSettings):
    """Evidence gathered before a run (see :mod:`alert_router.remediation.evidence`).

    ``required``: when the evidence cannot be gathered (no answer in time, 403...), the run is
    refused instead of going ahead without it.
    """

    required: bool = False


class TargetSpec(ConfigModel):
    """The object the runbook acts on; ``namespace`` and ``name`` are templates."""

    kind: Literal["Deployment", "StatefulSet", "CronJob", "Pod"]
    namespace: str = Field(min_length=1)
    name: str = Field(min_length=1)


class RunbookModel(ConfigModel):
    """A runbook as written in YAML (steps are validated one by one against the action registry)."""

    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9_]*[a-z0-9])?$")
    description: str = ""
    match: list[str] | str = Field(default_factory=list)
    when: str = ""
    target: TargetSpec | None = None
    guards: Guards = Guards()
    evidence: RunbookEvidence = RunbookEvidence()
    steps: list[dict[str, Any]] = Field(min_length=1)
    on_failure: list[dict[str, Any]] = Field(default_factory=list)

    @field_validator("match")
    @classmethod
    def _valid_matchers(cls, value: list[str] | str) -> list[str] | str:
        return validate_matcher_list(value)


@dataclass(frozen=True)
class Runbook:
    """A validated runbook."""

    name: str
    description: str
    matchers: tuple[Matcher, ...]
    when: str
    target: TargetSpec | None
    guards: Guards
    steps: tuple[ActionParams, ...]
    on_failure: tuple[ActionParams, ...]
    file: str = ""
    line: int = 1
    evidence: RunbookEvidence = field(default_factory=RunbookEvidence)
    when_uses_evidence: bool = False

    def matches(self, labels: dict[str, str]) -> bool:
        """Whether every ``match`` matcher accepts ``labels``."""
        return all(m.matches(labels) for m in self.matchers)

    @property
    def wants_evidence(self) -> bool:
        """Whether runs gather evidence first: an evidence target, and a change or a ``when`` to inform."""
        if not self.evidence.enabled or self.target is None or self.target.kind not in EVIDENCE_KINDS:
            return False
        return self.when_uses_evidence or any(REGISTRY[s.action].mutating for s in (*self.steps, *self.on_failure))


def _message(err: Any) -> str:
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        return "unknown key (check the spelling; see docs/runbooks.md)"
    return msg


def _pydantic_problems(exc: ValidationError, lines: LineMap, prefix: Sequence[str | int] = ()) -> list[Problem]:
    out = []
    for err in exc.errors(include_url=False):
        loc = (*prefix, *error_location(err))
        where = ".".join(str(p) for p in loc) or "runbook"
        out.append(lines.problem(loc, f"{where}: {_message(err)}"))
    return out


_ONE_LABEL = re.compile(r"\s*\{\{\s*labels(?:\.([A-Za-z_][A-Za-z0-9_]*)|\[\s*['\"]([^'\"]+)['\"]\s*\])\s*\}\}\s*")


def _label_of(template: str) -> str | None:
    """``"{{ labels.namespace }}"`` → ``namespace`` (a template that is exactly one label), else None."""
    m = _ONE_LABEL.fullmatch(template)
    return (m.group(1) or m.group(2)) if m else None


def _load_steps(
    raw: Any, section: str, lines: LineMap, target: TargetSpec | None, receivers: Collection[str] | None
) -> tuple[list[ActionParams], list[Problem]]:
    steps: list[ActionParams] = []
    problems: list[Problem] = []
    for i, item in enumerate(raw or []):
        path: tuple[str | int, ...] = (section, i)
        if not isinstance(item, dict) or "action" not in item:
            problems.append(lines.problem(path, f"{section}.{i}: a step is a mapping with an `action:` key"))
            continue
        key = item["action"]
        action = REGISTRY.get(key) if isinstance(key, str) else None
        if action is None:
            problems.append(
                lines.problem(
                    (*path, "action"),
                    f"{section}.{i}.action: unknown action {key!r}; known actions: {', '.join(REGISTRY)}",
                )
            )
            continue
        try:
            params = action.params.model_validate(item)
        except ValidationError as exc:
            problems += _pydantic_problems(exc, lines, path)
            continue
        if action.target_kinds is not None:
            if target is None:
                problems.append(lines.problem(path, f"{section}.{i}: action {key!r} needs a `target:`"))
            elif target.kind not in action.target_kinds:
                problems.append(
                    lines.problem(
                        (*path, "action"),
                        f"{section}.{i}.action: {key!r} acts on {' or '.join(sorted(action.target_kinds))}, "
                        f"but the target is a {target.kind}",
                    )
                )
        for fname in params.TEMPLATED:
            value = getattr(params, fname)
            if value is None:
                continue
            try:
                check_value(value, FAILURE_VARS if section == "on_failure" else STEP_VARS)
            except TemplateProblem as exc:
                field_key = action.params.model_fields[fname].alias or fname
                problems.append(lines.problem((*path, field_key), f"{section}.{i}.{field_key}: {exc}"))
        rcv = getattr(params, "receiver", None)
        if key == "notify" and rcv is not None and receivers is not None and rcv not in receivers:
            problems.append(lines.problem((*path, "receiver"), f"{section}.{i}.receiver: unknown receiver {rcv!r}"))
        steps.append(params)
    return steps, problems


def load_runbook(
    doc: YamlDocument, receivers: Collection[str] | None = None
) -> tuple[Runbook | None, list[Problem]]:
    """Validate one runbook document; ``receivers`` (when given) are the names ``notify`` steps may use."""
    lines = doc.lines
    if not isinstance(doc.data, dict):
        return None, [lines.problem((), "a runbook file must be a mapping with name, match, target and steps")]
    try:
        model = RunbookModel.model_validate(doc.data)
    except ValidationError as exc:
        return None, _pydantic_problems(exc, lines)
    problems: list[Problem] = []
    matchers = tuple(parse_matcher_list(model.match))
    uses_evidence = False
    if model.when:
        try:
            check_condition(model.when)
            uses_evidence = "evidence" in condition_variables(model.when)
        except TemplateProblem as exc:
            problems.append(lines.problem(("when",), f"when: {exc}"))
    if uses_evidence and (model.target is None or model.target.kind not in EVIDENCE_KINDS
                          or not model.evidence.enabled):
        problems.append(lines.problem(("when",), "when: reads `evidence`, which needs a target of kind "
                                      f"{', '.join(sorted(EVIDENCE_KINDS))} and evidence.enabled"))
    steps, p = _load_steps(model.steps, "steps", lines, model.target, receivers)
    problems += p
    on_failure, p = _load_steps(model.on_failure, "on_failure", lines, model.target, receivers)
    problems += p
    guards = model.guards
    for j, ns in enumerate(guards.allowed_namespaces):
        why = namespace_problem(ns)
        if why:
            problems.append(lines.problem(("guards", "allowed_namespaces", j), f"guards.allowed_namespaces: {why}"))
    target = model.target
    if target is not None:
        if not guards.allowed_namespaces:
            problems.append(
                lines.problem(
                    ("guards",) if "guards" in doc.data else ("target",),
                    "guards.allowed_namespaces is required: list the namespaces this runbook may act in",
                )
            )
        for fname in ("namespace", "name"):
            value = getattr(target, fname)
            if is_template(value):
                try:
                    check_template(value, CONDITION_VARS)
                except TemplateProblem as exc:
                    problems.append(lines.problem(("target", fname), f"target.{fname}: {exc}"))
                continue
            why = namespace_problem(value) if fname == "namespace" else name_problem(value)
            if why:
                problems.append(lines.problem(("target", fname), f"target.{fname}: {why}"))
        allowed = set(guards.allowed_namespaces)
        if allowed and not is_template(target.namespace) and target.namespace not in allowed:
            problems.append(
                lines.problem(
                    ("target", "namespace"),
                    f"target.namespace {target.namespace!r} is not in guards.allowed_namespaces "
                    f"{sorted(allowed)}",
                )
            )
        label = _label_of(target.namespace) if is_template(target.namespace) else None
        if allowed and label is not None:
            for k, m in enumerate(matchers):
                if m.name == label and m.op is MatchOp.EQ and m.value not in allowed:
                    where: tuple[str | int, ...] = ("match", k) if isinstance(model.match, list) else ("match",)
                    problems.append(
                        lines.problem(
                            where,
                            f"match: {m} pins the target namespace to {m.value!r}, which is not in "
                            f"guards.allowed_namespaces {sorted(allowed)}",
                        )
                    )
    if problems:
        return None, problems
    runbook = Runbook(
        name=model.name,
        description=model.description,
        matchers=matchers,
        when=model.when,
        target=target,
        guards=guards,
        steps=tuple(steps),
        on_failure=tuple(on_failure),
        file=str(doc.path),
        line=lines.line_of(()),
        evidence=model.evidence,
        when_uses_evidence=uses_evidence,
    )
    return runbook, []
