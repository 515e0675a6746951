"""Benchmark of the Kubernetes evidence round against the loopback Kubernetes stand-in (standalone, bounded).

A Deployment of 10 crash-looping pods (OOMKilled, 5 revisions, events, previous-container logs). With the
API server answering every request after 20 ms, it measures one evidence round (p50/p99 over 30 rounds)
with the requests in parallel (``max_concurrency`` 4, the default) against one at a time (1), and prints
how many requests a round sends. The ratio shows what the parallel round saves; the bound is the timeout.

Run from the repository root: ``.venv/bin/python bench/evidence.py`` (loopback only, about 20 s).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alert_router.redact import Redactor
from alert_router.remediation.actions import Target
from alert_router.remediation.evidence import EvidenceSettings, gather
from alert_router.remediation.kube import KubeClient, KubeSession
from alert_router.remediation.settings import KubernetesConfig, RetryConfig
from bench.common import percentile, table
from tests.standins.kube import ALLOW_ALL_RULES, KubeApiStandin

TARGET = Target("Deployment", "prod", "model-api")


def seed(kube: KubeApiStandin, pods: int) -> None:
    kube.add_deployment("prod", "model-api", replicas=pods, image="registry.example/ml/model:v38")
    for v in range(39, 43):
        kube.set_image("prod", "model-api", f"registry.example/ml/model:v{v}")
    log = "".join(f"line {i} loading shard {i}\n" for i in range(200))
    for i in range(pods):
        kube.add_pod("prod", f"model-api-x-{i}", owner_deployment="model-api", ready=False, restart_count=4,
                     waiting_reason="CrashLoopBackOff", last_termination={"reason": "OOMKilled", "exitCode": 137},
                     previous_logs=log)
        kube.add_event("prod", "Pod", f"model-api-x-{i}", "BackOff", "Back-off restarting failed container")


async def rounds(client: KubeClient, n: int, concurrency: int) -> tuple[list[float], str]:
    settings = EvidenceSettings(max_concurrency=concurrency, timeout=30)
    times: list[float] = []
    summary = ""
    for _ in range(n):
        session = KubeSession(client, dry_run=False, deadline=time.monotonic() + 30)
        t0 = time.perf_counter()
        ev = await gather(session, TARGET, settings, Redactor())
        times.append((time.perf_counter() - t0) * 1000)
        summary = str(ev["summary"])
    return times, summary


async def main(n: int, pods: int, delay: float) -> None:
    with tempfile.TemporaryDirectory() as tmp, KubeApiStandin(rules=ALLOW_ALL_RULES, controller_step=None) as kube:
        seed(kube, pods)
        client = KubeClient(KubernetesConfig(kubeconfig=str(kube.kubeconfig(Path(tmp) / "kc"))),
                            RetryConfig(attempts=1))
        try:
            await rounds(client, 2, 4)  # warm up: the client's import and first connections
            kube.delay = delay
            before = len(kube.requests)
            parallel, summary = await rounds(client, n, 4)
            per_round = (len(kube.requests) - before) / n
            serial, _ = await rounds(client, n, 1)
        finally:
            client.close()
    rows = [[name, f"{percentile(t, 50):.1f}", f"{percentile(t, 99):.1f}", f"{max(t):.1f}"]
            for name, t in (("parallel (max_concurrency 4)", parallel), ("one at a time", serial))]
    print(f"evidence round, {pods} crash-looping pods, API server answering in {delay * 1000:.0f} ms, {n} rounds, "
          f"{per_round:.0f} requests per round")
    print(table(["", "p50 ms", "p99 ms", "max ms"], rows))
    print(f"parallel / one at a time (p50): {percentile(parallel, 50) / percentile(serial, 50):.2f}")
    print(f"summary: {summary}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--pods", type=int, default=10)
    parser.add_argument("--delay", type=float, default=0.02)
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.pods, args.delay))
