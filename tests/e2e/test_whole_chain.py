"""The whole chain on loopback: model API -> Prometheus -> Alertmanager -> alert-router -> file receiver + runbook.

A tiny aiohttp "model API" serves slow predictions and exposes what a FastAPI model service would
(``model_requests_total``, ``model_latency_seconds``); a load loop calls it. A real Prometheus scrapes it as job
``model-api`` in namespace ``prod`` and evaluates the shipped ``rules/prometheus/model-monitoring.yml`` (a copy in
which only HighModelLatency's ``for:`` is shortened, so it fires within seconds while the other rules keep theirs).
A real Alertmanager routes the alert with a bearer token to alert-router, built from the shipped
``alert-router.yaml``, ``rules/`` and ``runbooks/`` and served with ``web.AppRunner``/``TCPSite``.

The remediation engine reaches a Kubernetes API stand-in (``tests/standins/kube.py``) that holds the
``prod/model-api`` Deployment and enforces exactly the Role the Helm chart renders, so the dry-run plan is made
with the production permissions.

Checked: the ``file`` receiver recorded the firing HighModelLatency notification with the labels the scale-up
runbook targets; the ``scale-up-model-api`` runbook ran in dry run, read the Deployment's scale (allowed by the
chart's Role), planned 2 -> 3 replicas and sent no mutating request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import aiohttp
import helm_python as helm
import pytest
import yaml
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

from alert_router.app import build_app
from alert_router.appkeys import RUNTIME
from alert_router.config import load
from alert_router.pipeline.route import route_labels
from alert_router.remediation.engine import RemediationEngine
from alert_router.remediation.runs import RunRecord
from tests.procs.alertmanager import Webhook
from tests.procs.fixtures import AlertmanagerFactory, PrometheusFactory
from tests.standins.kube import KubeApiStandin

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "rules" / "prometheus" / "model-monitoring.yml"
TOKEN = "e2e-whole-chain-token"  # a test credential shared by the local Alertmanager and alert-router
PREDICTION_SECONDS = 0.6  # above the 0.5 s SLA, inside the (0.5, 0.75] histogram bucket
BUDGET_SECONDS = 45.0  # the whole chain must complete in this; the test timeout is 60 s


def fast_rules(alert: str = "HighModelLatency", for_: str = "2s") -> str:
    """The shipped rules with ``for:`` of ``alert`` shortened; every other rule keeps its own ``for:``."""
    doc = yaml.safe_load(RULES.read_text())
    changed = 0
    for group in doc["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == alert:
                rule["for"] = for_
                changed += 1
    assert changed == 1, f"expected one {alert} rule in {RULES}"
    return yaml.safe_dump(doc, sort_keys=False)


class ModelApi:
    """A slow model service: ``POST /predict`` takes PREDICTION_SECONDS; ``GET /metrics`` exposes its metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "model_requests", "Prediction requests by model and HTTP status.", ["model", "code"], registry=self.registry
        )
        self.latency = Histogram("model_latency_seconds", "Prediction latency.", registry=self.registry)
        self.app = web.Application()
        self.app.router.add_post("/predict", self.predict)
        self.app.router.add_get("/metrics", self.metrics)

    async def predict(self, request: web.Request) -> web.Response:
        """Answer a prediction, slowly, and record it."""
        started = time.perf_counter()
        await asyncio.sleep(PREDICTION_SECONDS)
        self.latency.observe(time.perf_counter() - started)
        self.requests.labels("churn-v3", "200").inc()
        return web.json_response({"prediction": 0.42})

    async def metrics(self, request: web.Request) -> web.Response:
        """Prometheus text exposition."""
        return web.Response(body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})


@contextlib.asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    """Serve ``app`` on an ephemeral loopback port; yield its base URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


async def load_loop(url: str, concurrency: int = 8) -> None:
    """Keep ``concurrency`` predictions in flight until cancelled (about 13 requests/s, well above 1/s)."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:

        async def worker() -> None:
            while True:
                async with session.post(f"{url}/predict", json={"features": [1, 2, 3]}) as resp:
                    assert resp.status == 200
                    await resp.read()

        await asyncio.gather(*(worker() for _ in range(concurrency)))


async def wait_for(what: str, check: Callable[[], Awaitable[Any]], deadline: float, diagnose: Callable[[], str]) -> Any:
    """Poll ``check`` every 0.2 s until it returns something truthy, failing with ``diagnose()`` at ``deadline``."""
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}\n{diagnose()}")
        await asyncio.sleep(0.2)


def alert_router_tree(root: Path, kubeconfig: Path) -> Path:
    """Copy the shipped config (pointed at ``kubeconfig``), rules and runbooks as the image bakes them; return the
    config path. ``${VAR}`` references survive the YAML round trip and expand at load time as usual."""
    config = yaml.safe_load((REPO / "alert-router.yaml").read_text())
    assert config.get("dry_run") is True, "the shipped config must keep remediation in dry run"
    config["kubernetes"] = {**(config.get("kubernetes") or {}), "kubeconfig": str(kubeconfig), "in_cluster": False}
    (root / "alert-router.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    shutil.copytree(REPO / "rules", root / "rules", ignore=shutil.ignore_patterns("prometheus"))
    shutil.copytree(REPO / "runbooks", root / "runbooks")
    return root / "alert-router.yaml"


def chart_role_rules(namespace: str) -> list[dict[str, Any]]:
    """The RBAC rules of the Role the Helm chart renders for ``namespace`` (rbac.namespaces: [namespace])."""
    with helm.Chart.load(REPO / "helm" / "alert-router") as chart:
        rendered = chart.render({"rbac": {"namespaces": [namespace]}}, name="alert-router", namespace="monitoring")
    docs = [d for d in yaml.safe_load_all(rendered["alert-router/templates/rbac.yaml"]) if d]
    (role,) = [d for d in docs if d["kind"] == "Role" and d["metadata"]["namespace"] == namespace]
    rules: list[dict[str, Any]] = role["rules"]
    return rules


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines file (none when it does not exist yet)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture
def chart_kube() -> Iterator[KubeApiStandin]:
    """A Kubernetes API stand-in that authorizes requests with the chart's Role for namespace ``prod``."""
    kube = KubeApiStandin(rules=chart_role_rules("prod"))
    kube.start()
    try:
        yield kube
    finally:
        kube.stop()
    assert not kube.internal_errors, "kube stand-in raised internally:\n" + "\n".join(kube.internal_errors)


@pytest.mark.timeout(60)
async def test_latency_alert_flows_from_prometheus_to_the_file_receiver_and_the_scale_up_runbook(
    tmp_path: Path,
    prometheus_factory: PrometheusFactory,
    alertmanager_factory: AlertmanagerFactory,
    chart_kube: KubeApiStandin,
) -> None:
    """HighModelLatency fires in Prometheus, Alertmanager posts it with the token, alert-router records it in the
    file receiver and routes it to the scale-up runbook, planned in dry run."""
    started = time.monotonic()
    deadline = started + BUDGET_SECONDS
    kube = chart_kube
    kube.add_deployment("prod", "model-api", replicas=2)
    # released a day ago: the latency is not the release's (the rollback runbook is not applicable)
    kube.backdate("replicasets", "prod", kube.replicasets("prod")[0]["metadata"]["name"], 86400)
    config_path = alert_router_tree(tmp_path, kube.kubeconfig(tmp_path / "kubeconfig"))
    data_dir = tmp_path / "data"
    env = {"ALERT_ROUTER_DATA_DIR": str(data_dir), "ALERT_ROUTER_TOKEN": TOKEN, "ALERT_ROUTER_LOG_FORMAT": "console"}
    config = load(config_path, env=env)
    assert config.settings.dry_run is True, "the shipped config must keep remediation in dry run"
    assert config.settings.auth.enabled

    model = ModelApi()
    app = build_app(config)
    async with serve(model.app) as model_url, serve(app) as router_url:
        load_task = asyncio.create_task(load_loop(model_url), name="model-load")
        try:
            (am,) = await alertmanager_factory(
                [Webhook(f"{router_url}/webhook", bearer_token=TOKEN)],
                group_by=("alertname", "namespace"),
                group_wait="1s",
                group_interval="1s",
            )
            prom = await prometheus_factory(
                self_scrape=False,
                scrape_configs=[
                    {
                        "job_name": "model-api",
                        "static_configs": [
                            {"targets": [model_url.removeprefix("http://")], "labels": {"namespace": "prod"}}
                        ],
                    }
                ],
                rules={"model-monitoring.yml": fast_rules()},
                alertmanager_urls=[am.url],
            )
            assert prom.argv().count("--rules.alert.resend-delay=1s") == 1

            def diagnose() -> str:
                return (
                    f"notifications: {read_jsonl(data_dir / 'notifications.jsonl')}\n"
                    f"--- prometheus log ---\n{prom.log_text(40)}\n--- alertmanager log ---\n{am.log_text(40)}"
                )

            async def prometheus_fires() -> list[dict[str, Any]]:
                return [
                    a
                    for a in await prom.alerts()
                    if a["labels"].get("alertname") == "HighModelLatency" and a["state"] == "firing"
                ]

            (firing,) = await wait_for("HighModelLatency to fire in Prometheus", prometheus_fires, deadline, diagnose)
            assert firing["labels"]["namespace"] == "prod"
            assert firing["labels"]["deployment"] == "model-api"
            assert float(firing["value"]) > 0.5

            async def am_has_it() -> list[dict[str, Any]]:
                return await am.alerts(filter={"alertname": "HighModelLatency"}, active=True)

            await wait_for("Alertmanager to receive the alert", am_has_it, deadline, diagnose)

            async def file_receiver_has_it() -> list[dict[str, Any]]:
                return [
                    r
                    for r in read_jsonl(data_dir / "notifications.jsonl")
                    if any(a["labels"].get("alertname") == "HighModelLatency" for a in r["alerts"])
                ]

            records = await wait_for("the file receiver to record it", file_receiver_has_it, deadline, diagnose)
        finally:
            load_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await load_task

        record = records[0]
        assert record["receiver"] == "file"
        assert record["rule"] == "record-everything"
        assert record["status"] == "firing"
        assert record["group_labels"] == {"alertname": "HighModelLatency", "namespace": "prod"}
        (alert,) = record["alerts"]
        labels = alert["labels"]
        assert alert["status"] == "firing"
        assert labels["severity"] == "warning"
        assert labels["namespace"] == "prod"
        assert labels["deployment"] == "model-api"
        assert labels["job"] == "model-api"
        assert alert["annotations"]["summary"] == "p95 latency above 500ms", "Prometheus's annotations must arrive"
        # Prometheus builds the link from its hostname (no --web.external-url), so compare the port and the query.
        assert f":{prom.port}/graph?g0.expr=" in alert["generatorURL"], alert["generatorURL"]
        assert "model_latency_seconds_bucket" in unquote_plus(alert["generatorURL"])

        # The routing picked the rollback, then the scale-up runbook for exactly these labels, and the scale-up's
        # own match accepts them (the rollback is not applicable: the last rollout is a day old).
        result = route_labels(labels, config.rules, config.default)
        runbooks = [name for name, _ in result.runbooks]
        assert runbooks == ["rollback-model-api", "scale-up-model-api"]
        assert all(m.matches(labels) for m in config.runbooks["scale-up-model-api"].matchers)
        assert "file" in result.receiver_names

        rt = app[RUNTIME]
        assert rt.config.settings.dry_run is True
        assert isinstance(rt.services.get("remediation"), RemediationEngine), "build_app must run the runbook engine"

        async def dry_run_finished() -> list[RunRecord]:
            runs = await rt.store.runs(runbook="scale-up-model-api")
            return [r for r in runs if r.status not in ("running", "pending_approval")]

        (run,) = await wait_for("the scale-up runbook to finish its dry run", dry_run_finished, deadline, diagnose)
        assert run.status == "dry_run", (run.status, run.summary)
        assert run.dry_run is True
        assert run.target == "Deployment/prod/model-api"
        assert run.fingerprint == alert["fingerprint"]
        assert "would scale Deployment/prod/model-api from 2 to 3" in run.summary, run.summary
        scale_step = run.data["steps"][0]
        assert (scale_step["action"], scale_step["status"]) == ("scale", "ok")
        requests = {(r["method"], r["path"]): r for r in scale_step["requests"]}
        scale_path = "/apis/apps/v1/namespaces/prod/deployments/model-api/scale"
        assert requests[("GET", scale_path)]["sent"] is True, "dry runs read the cluster"
        assert requests[("GET", scale_path)]["status"] == 200, "the chart's Role must allow reading the scale"
        patch = requests[("PATCH", scale_path)]
        assert (patch["sent"], patch["query"]) == (True, {"dryRun": "All"}), "dry runs send server-side dry runs"
        assert patch["status"] == 200, "the chart's Role must allow the patch a real run would send"
        assert patch["body"] == {"spec": {"replicas": 3}}
        audit = await rt.store.audit_records(run_id=run.id)
        assert [r.event for r in audit][:2] == ["matched", "evidence"], "every decision of the run is audited"
        assert audit[1].details["status"] == "ok", "the chart's Role must allow gathering the evidence"
        (skipped,) = await rt.store.audit_records(runbook="rollback-model-api")
        assert skipped.event == "not_applicable" and "rolled out 24 hours ago" in skipped.details["evidence"]
    assert kube.persisting_requests == [], "a dry run changed the cluster"
    assert kube.deployment("prod", "model-api")["spec"]["replicas"] == 2
    assert kube.requests_to("/deployments/model-api/scale", "GET"), "the plan was made without reading the cluster"
    assert time.monotonic() - started < BUDGET_SECONDS + 5
