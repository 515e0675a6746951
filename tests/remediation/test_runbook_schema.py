"""Runbook files are validated up front: `alert-router check` names each bad runbook with FILE:LINE."""

from __future__ import annotations

from pathlib import Path

import pytest

from alert_router.cli import main
from alert_router.config import load
from alert_router.errors import ConfigError
from alert_router.remediation.actions.scale import Params as ScaleParams
from alert_router.remediation.runbook import load_runbook
from alert_router.yamlfile import load_yaml
from tests.helpers import write_config

REPO = Path(__file__).resolve().parents[2]

GOOD = """\
name: good
match: ['alertname="ModelServiceDown"']
target: {kind: Deployment, namespace: "{{ labels.namespace }}", name: "{{ labels.deployment }}"}
guards: {allowed_namespaces: [prod]}
steps:
  - action: rollout_restart
"""

# (file text, expected line, a fragment of the message) — one per kind of mistake `check` must catch.
BAD = {
    "unknown-action": ("""\
name: unknown-action
match: ['alertname="X"']
target: {kind: Deployment, namespace: prod, name: model-api}
guards: {allowed_namespaces: [prod]}
steps:
  - action: rollout_restart
  - action: rolout_restart
""", 7, "unknown action 'rolout_restart'"),
    "missing-ceiling": ("""\
name: missing-ceiling
match: ['alertname="X"']
target: {kind: Deployment, namespace: prod, name: model-api}
guards: {allowed_namespaces: [prod]}
steps:
  - action: scale
    by: 1
""", 6, "max_replicas"),
    "template-syntax": ("""\
name: template-syntax
match: ['alertname="X"']
target:
  kind: Deployment
  namespace: prod
  name: "{{ labels.deployment }"
guards: {allowed_namespaces: [prod]}
steps:
  - action: rollout_restart
""", 6, "invalid template"),
    "template-unknown-variable": ("""\
name: template-unknown-variable
match: ['alertname="X"']
target: {kind: Deployment, namespace: prod, name: model-api}
guards: {allowed_namespaces: [prod]}
steps:
  - action: notify
    message: "restarting {{ lables.deployment }}"
""", 7, "unknown variable(s) lables"),
    "template-reaches-dunder": ("""\
name: template-reaches-dunder
match: ['alertname="X"']
target: {kind: Deployment, namespace: prod, name: model-api}
guards: {allowed_namespaces: [prod]}
steps:
  - action: notify
    message: "{{ labels.__class__.__mro__ }}"
""", 7, "`labels.__class__` reaches '__class__', which the sandbox refuses"),
    "template-attr-filter": ("""\
name: template-attr-filter
match: ['alertname="X"']
target: {kind: Deployment, namespace: prod, name: model-api}
guards: {allowed_namespaces: [prod]}
steps:
  - action: http
    url: "http://127.0.0.1:9/hook"
    body: "{{ (alert|attr('__init__')).__globals__ }}"
""", 8, "which the sandbox refuses"),
    "when-reaches-globals": ("""\
name: when-reaches-globals
match: ['alertname="X"']
when: "{{ runbook.__init__.__globals__ is defined }}"
target: {kind: Deployment, namespace: prod, name: model-api}
guards: {allowed_namespaces: [prod]}
steps:
  - action: rollout_restart
""", 3, "which the sandbox refuses"),
    "bad-when": ("""\
name: bad-when
match: ['alertname="X"']
when: "{{ labels.drift_share | float > }}"
target: {kind: Deployment, namespace: prod, name: model-api}
guards: {allowed_namespaces: [prod]}
steps:
  - action: rollout_restart
""", 3, "invalid condition"),
    "namespace-outside": ("""\
name: namespace-outside
match: ['alertname="X"']
target:
  kind: Deployment
  namespace: kube-system
  name: coredns
guards: {allowed_namespaces: [prod, staging]}
steps:
  - action: rollout_restart
""", 5, "'kube-system' is not in guards.allowed_namespaces"),
    "namespace-pinned-outside": ("""\
name: namespace-pinned-outside
match:
  - alertname="X"
  - namespace="dev"
target: {kind: Deployment, namespace: "{{ labels.namespace }}", name: model-api}
guards: {allowed_namespaces: [prod]}
steps:
  - action: rollout_restart
""", 4, "pins the target namespace to 'dev'"),
    "no-allowed-namespaces": ("""\
name: no-allowed-namespaces
match: ['alertname="X"']
target: {kind: Deployment, namespace: "{{ labels.namespace }}", name: model-api}
guards:
  cooldown: 5m
steps:
  - action: rollout_restart
""", 4, "allowed_namespaces is required"),
    "evidence-without-target": ("""\
name: evidence-without-target
match: ['alertname="X"']
when: "{{ evidence.last_rollout_age < 600 }}"
steps:
  - action: notify
""", 3, "when: reads `evidence`, which needs a target of kind Deployment, Pod, StatefulSet"),
    "wrong-kind": ("""\
name: wrong-kind
match: ['alertname="X"']
target: {kind: CronJob, namespace: prod, name: retrain}
guards: {allowed_namespaces: [prod]}
steps:
  - action: create_job_from_cronjob
  - action: rollout_restart
""", 7, "acts on Deployment or StatefulSet, but the target is a CronJob"),
    "bad-literal-name": ("""\
name: bad-literal-name
match: ['alertname="X"']
target: {kind: Deployment, namespace: prod, name: Model_API}
guards: {allowed_namespaces: [prod]}
steps:
  - action: rollout_restart
""", 3, "not a DNS-1123 subdomain"),
    "unknown-receiver": ("""\
name: unknown-receiver
match: ['alertname="X"']
steps:
  - action: notify
    receiver: pager
""", 5, "unknown receiver 'pager'"),
    "ceiling-below-target": ("""\
name: ceiling-below-target
match: ['alertname="X"']
target: {kind: Deployment, namespace: prod, name: model-api}
guards: {allowed_namespaces: [prod]}
steps:
  - action: scale
    replicas: 20
    max_replicas: 10
""", 6, "replicas 20 is outside"),
    "unknown-key": ("""\
name: unknown-key
match: ['alertname="X"']
target: {kind: Deployment, namespace: prod, name: model-api}
guards: {allowed_namespaces: [prod], cooldwn: 5m}
steps:
  - action: rollout_restart
""", 4, "guards.cooldwn: unknown key"),
}

RULES = """\
rules:
  - name: all
    match: []
    receivers: [file]
"""


def test_shipped_config_passes_check(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--config", str(REPO / "alert-router.yaml")]) == 0
    assert "4 runbooks" in capsys.readouterr().out


def test_shipped_runbooks_keep_their_safety_rails() -> None:
    config = load(REPO / "alert-router.yaml", {})
    scale = config.runbooks["scale-up-model-api"]
    (step,) = [s for s in scale.steps if isinstance(s, ScaleParams)]
    assert step.max_replicas == 10 and step.by == 1
    assert config.runbooks["retrain-on-drift"].guards.require_approval
    rollback = config.runbooks["rollback-model-api"]
    assert rollback.guards.require_approval and rollback.guards.cooldown >= 3600
    assert rollback.when_uses_evidence and rollback.wants_evidence
    assert [s.action for s in rollback.steps] == ["rollout_undo", "wait_rollout", "wait_resolved"]
    for rb in config.runbooks.values():
        assert set(rb.guards.allowed_namespaces) <= {"prod", "staging"}
        assert rb.guards.cooldown > 0
    assert config.settings.dry_run is True


@pytest.mark.parametrize("name", sorted(BAD))
def test_check_rejects_bad_runbook_with_file_and_line(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text, line, fragment = BAD[name]
    cfg = write_config(tmp_path, rules=RULES, runbooks={"good.yaml": GOOD, f"{name}.yaml": text})
    assert main(["check", "--config", str(cfg)]) == 1
    out = capsys.readouterr().out
    where = f"{tmp_path / 'runbooks' / f'{name}.yaml'}:{line}:"
    matching = [ln for ln in out.splitlines() if ln.startswith(where)]
    assert matching, f"expected a problem at {where}, got:\n{out}"
    assert any(fragment in ln for ln in matching), out
    assert "good.yaml" not in out  # the valid runbook next to it raises nothing


def test_every_problem_of_one_file_is_reported(tmp_path: Path) -> None:
    text = """\
name: many
match: ['alertname="X"']
target: {kind: Deployment, namespace: kube-system, name: "{{ labels.deployment }"}
guards: {allowed_namespaces: [prod]}
steps:
  - action: explode
  - action: scale
    by: 2
"""
    cfg = write_config(tmp_path, rules=RULES, runbooks={"many.yaml": text})
    with pytest.raises(ConfigError) as err:
        load(cfg, {})
    lines = sorted(p.line for p in err.value.problems)
    assert lines == [3, 3, 6, 7]


def test_load_runbook_parses_steps_into_typed_params(tmp_path: Path) -> None:
    path = tmp_path / "rb.yaml"
    path.write_text(GOOD + """\
  - action: scale
    factor: 1.5
    max_replicas: 8
    min_replicas: 2
on_failure:
  - action: notify
    message: "{{ runbook }} failed on {{ target.name }} (run {{ run.id }})"
""")
    doc, problems = load_yaml(path, {})
    assert doc is not None and not problems
    rb, problems = load_runbook(doc, receivers={"file"})
    assert rb is not None, problems
    assert [s.action for s in rb.steps] == ["rollout_restart", "scale"]
    scale = rb.steps[1]
    assert isinstance(scale, ScaleParams) and scale.clamp(20) == 8 and scale.clamp(0) == 2
    assert rb.matches({"alertname": "ModelServiceDown"}) and not rb.matches({"alertname": "Other"})
