"""Regenerate docs/graph-example.png from the test data: ``.venv/bin/python -m tests.graph.docs_example``.

A real Prometheus loads the backfilled hour of tests/graph/data.py and scrapes its exporter; then
``alert-router graph`` draws HighModelLatency from the shipped rule, exactly as a page would carry it.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.graph.data import Exporter, ModelData, backfill
from tests.loopback import serve
from tests.procs.prometheus import Prometheus

REPO = Path(__file__).resolve().parents[2]


async def main(out: Path) -> None:
    data = ModelData(time.time())
    work = Path(tempfile.mkdtemp(prefix="ar-docs-graph-"))
    backfill(data, work / "data")
    async with serve(Exporter(data).app) as url:
        prom = Prometheus(self_scrape=False, workdir=work, scrape_configs=[{
            "job_name": "model-api",
            "static_configs": [{"targets": [url.removeprefix("http://")],
                                "labels": {"namespace": "prod", "instance": "model-api-0"}}]}])
        await prom.start()
        try:
            await asyncio.sleep(3)  # a few live scrapes after the backfilled hour
            cmd = [sys.executable, "-m", "alert_router", "graph", "--config", str(REPO / "alert-router.yaml"),
                   "alertname=HighModelLatency", "namespace=prod", "job=model-api", "deployment=model-api",
                   "severity=warning", "--rules-file", str(REPO / "rules/prometheus/model-monitoring.yml"),
                   "--prometheus", prom.url, "--since", "14m", "--out", str(out)]
            print(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout, end="")
        finally:
            prom.cleanup()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "docs" / "graph-example.png"))
