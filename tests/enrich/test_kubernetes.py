"""The Kubernetes enrichment against the Kubernetes stand-in: the line people read, its bound, its cache, its safety."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alert_router.config import Config, load
from alert_router.enrich.stage import EnrichmentStage, describe_queries
from alert_router.render import defaults
from alert_router.render.context import build_context
from alert_router.render.templates import Template
from tests.enrich.support import alert, notification
from tests.helpers import write_config
from tests.remediation.test_evidence import bad_release
from tests.standins.kube import KubeApiStandin

LABELS = {"alertname": "ModelServiceDown", "namespace": "prod", "deployment": "model-api", "severity": "critical"}
SUMMARY = "3/3 pods CrashLoopBackOff, OOMKilled, rolled out 12 minutes ago (image model:v42)"


def kube_config(tmp: Path, kubeconfig: Path | None, block: str = "enabled: true") -> Config:
    """Loki off, links off, ``enrich.kubernetes`` as given, the stand-in's kubeconfig."""
    body = (f"kubernetes: {{kubeconfig: {kubeconfig}}}\n" if kubeconfig else "") + (
        f"enrich:\n  loki: null\n  links: {{enabled: false}}\n  kubernetes: {{{block}}}\n"
    )
    return load(write_config(tmp, body), {})


def kubernetes_of(n: Any) -> list[dict[str, Any]]:
    return n.extra["enrichment"]["kubernetes"]


async def test_the_page_says_what_the_cluster_says(
    kube_standin: KubeApiStandin, kube_kubeconfig: Path, tmp_path: Path,
    make_stage: Callable[[Config], EnrichmentStage],
) -> None:
    bad_release(kube_standin)
    stage = make_stage(kube_config(tmp_path, kube_kubeconfig))
    n = notification([alert("fp1", LABELS), alert("fp2", {**LABELS, "pod": "model-api-7d9f-0"})])
    await stage(n)
    (evidence,) = kubernetes_of(n)  # both alerts name the Deployment (deployment wins over pod)
    assert evidence["summary"] == SUMMARY and evidence["fingerprints"] == ["fp1", "fp2"]
    assert evidence["previous_logs"][0]["lines"][-1] == "CUDA error: out of memory; password=[REDACTED]"
    assert n.extra["enrichment"]["logs"] == [] and n.extra["enrichment"]["links"] == {}
    ctx = build_context(n)
    assert ctx["kubernetes"] == [{"target": "Deployment/prod/model-api", "status": "ok", "summary": SUMMARY,
                                  "fingerprints": ["fp1", "fp2"]}]
    slack = Template("mrkdwn", defaults.SLACK_BODY).render(ctx)
    assert f"🔎 `Deployment/prod/model-api`: {SUMMARY}" in slack
    telegram = Template("html", defaults.TELEGRAM).render(ctx)
    assert f"🔎 <code>Deployment/prod/model-api</code>: {SUMMARY}" in telegram
    assert kube_standin.mutating_requests == []


async def test_a_storm_about_one_deployment_costs_one_round(
    kube_standin: KubeApiStandin, kube_kubeconfig: Path, tmp_path: Path,
    make_stage: Callable[[Config], EnrichmentStage],
) -> None:
    bad_release(kube_standin)
    stage = make_stage(kube_config(tmp_path, kube_kubeconfig))
    notes = [notification([alert(f"fp{i}", LABELS)]) for i in range(20)]
    await asyncio.gather(*(stage(n) for n in notes))
    assert {kubernetes_of(n)[0]["summary"] for n in notes} == {SUMMARY}
    assert len(kube_standin.requests_to("/deployments/model-api", "GET")) == 1


async def test_bounded_and_never_fatal(
    kube_standin: KubeApiStandin, kube_kubeconfig: Path, tmp_path: Path,
    make_stage: Callable[[Config], EnrichmentStage],
) -> None:
    """A stalled API server costs the evidence, never the notification."""
    bad_release(kube_standin)
    kube_standin.path_delays.append(("/deployments/", 2.0))
    stage = make_stage(kube_config(tmp_path, kube_kubeconfig, "enabled: true, timeout: 0.3s"))
    n = notification([alert("fp1", LABELS)])
    await stage(n)
    (evidence,) = kubernetes_of(n)
    assert evidence["status"] == "unavailable"
    assert evidence["summary"] == "evidence unavailable: timeout: not answered within 0.3s"


async def test_untrusted_label_values_and_namespaces_name_nothing(
    kube_standin: KubeApiStandin, kube_kubeconfig: Path, tmp_path: Path,
    make_stage: Callable[[Config], EnrichmentStage],
) -> None:
    stage = make_stage(kube_config(tmp_path, kube_kubeconfig, "enabled: true, namespaces: [prod]"))
    n = notification([
        alert("a", {**LABELS, "deployment": "../../secrets"}),
        alert("b", {**LABELS, "namespace": "kube-system"}),
        alert("c", {"alertname": "NodeDown"}),
    ])
    await stage(n)
    assert kubernetes_of(n) == [] and kube_standin.requests == []


async def test_off_by_default(kube_standin: KubeApiStandin, kube_kubeconfig: Path, tmp_path: Path,
                              make_stage: Callable[[Config], EnrichmentStage]) -> None:
    body = f"kubernetes: {{kubeconfig: {kube_kubeconfig}}}\n"
    stage = make_stage(load(write_config(tmp_path, body), {}))
    n = notification([alert("fp1", LABELS)])
    await stage(n)
    assert "kubernetes" not in n.extra.get("enrichment", {}) and kube_standin.requests == []


def test_route_test_names_the_workload(tmp_path: Path) -> None:
    config = kube_config(tmp_path, None)
    lines = describe_queries(config, list(config.rules), LABELS)
    assert "kubernetes evidence (rule everything): Deployment/prod/model-api, within 3s" in lines
    assert describe_queries(config, list(config.rules), {"alertname": "NodeDown"})[-1].endswith(
        "no workload named by these labels")
