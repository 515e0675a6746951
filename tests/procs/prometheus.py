"""A real Prometheus server (Debian's ``prometheus`` 2.42) on loopback, for tests.

Typical use, through the ``prometheus_factory`` fixture of :mod:`tests.procs.fixtures`::

    prom = await prometheus_factory(
        scrape_targets=["127.0.0.1:8080"],
        rules={"model.yml": RULES_YAML},
        alertmanager_urls=[am.url],
    )
    firing = await prom.alerts()
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import yaml

from tests.procs.alertmanager import (
    ManagedProcess,
    ProcessStartError,
    _address_in_use,
    free_port,
    require_binary,
    wait_ready,
)

PROMETHEUS_BIN = "/usr/bin/prometheus"
PROMTOOL_BIN = "/usr/bin/promtool"


def _alertmanager_config(url: str) -> dict[str, Any]:
    parts = urlsplit(url if "://" in url else f"http://{url}")
    config: dict[str, Any] = {
        "scheme": parts.scheme or "http",
        "api_version": "v2",
        "timeout": "2s",
        "static_configs": [{"targets": [parts.netloc]}],
    }
    if parts.path and parts.path != "/":
        config["path_prefix"] = parts.path
    return config


@dataclass
class Prometheus:
    """A real Prometheus process scraping ``scrape_targets`` and sending alerts to ``alertmanager_urls``.

    ``rules`` maps a file name to rule-file content (YAML text or a mapping); each is written to the work dir
    and listed in ``rule_files``. Prometheus always scrapes itself as job ``prometheus`` unless
    ``self_scrape`` is false; the other targets are job ``targets`` (or pass full ``scrape_configs``).
    ``--rules.alert.resend-delay`` defaults to 1s so the first alert is not held back for a minute.
    """

    scrape_targets: Sequence[str] = ()
    scrape_configs: Sequence[Mapping[str, Any]] = ()
    rules: Mapping[str, str | Mapping[str, Any]] = field(default_factory=dict)
    alertmanager_urls: Sequence[str] = ()
    scrape_interval: str = "1s"
    evaluation_interval: str = "1s"
    resend_delay: str = "1s"
    external_labels: Mapping[str, str] = field(default_factory=dict)
    self_scrape: bool = True
    extra_args: Sequence[str] = ()
    start_timeout: float = 30.0
    binary: str = PROMETHEUS_BIN
    port: int = 0
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="ar-prom-")))
    _proc: ManagedProcess | None = field(default=None, init=False, repr=False)

    @property
    def name(self) -> str:
        """A short label for logs and failure reports."""
        return f"prometheus@{self.port}"

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:40123``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        """Where the generated ``prometheus.yml`` lives."""
        return self.workdir / "prometheus.yml"

    @property
    def process(self) -> ManagedProcess | None:
        """The managed process, once started."""
        return self._proc

    def config(self) -> dict[str, Any]:
        """Return the configuration this instance runs with, as a mapping."""
        scrape: list[dict[str, Any]] = []
        if self.self_scrape:
            scrape.append({"job_name": "prometheus", "static_configs": [{"targets": [f"127.0.0.1:{self.port}"]}]})
        if self.scrape_targets:
            scrape.append({"job_name": "targets", "static_configs": [{"targets": list(self.scrape_targets)}]})
        scrape.extend(dict(c) for c in self.scrape_configs)
        config: dict[str, Any] = {
            "global": {
                "scrape_interval": self.scrape_interval,
                "scrape_timeout": self.scrape_interval,
                "evaluation_interval": self.evaluation_interval,
            },
            "scrape_configs": scrape,
            "rule_files": [str(self.workdir / "rules" / name) for name in self.rules],
        }
        if self.external_labels:
            config["global"]["external_labels"] = dict(self.external_labels)
        if self.alertmanager_urls:
            config["alerting"] = {"alertmanagers": [_alertmanager_config(u) for u in self.alertmanager_urls]}
        return config

    def write_config(self) -> Path:
        """Write the rule files and :meth:`config` into the work dir and return the config path."""
        rules_dir = self.workdir / "rules"
        rules_dir.mkdir(parents=True, exist_ok=True)
        for name, content in self.rules.items():
            text = content if isinstance(content, str) else yaml.safe_dump(dict(content), sort_keys=False)
            (rules_dir / name).write_text(text)
        self.config_path.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        return self.config_path

    def argv(self) -> list[str]:
        """The command line for the current port."""
        return [
            self.binary,
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            f"--rules.alert.resend-delay={self.resend_delay}",
            "--web.enable-lifecycle",
            *self.extra_args,
        ]

    async def start(self) -> None:
        """Write the config, start the process and wait (``start_timeout``) until ``/-/ready`` answers.

        A port lost to a race with another process is retried with a new one.
        """
        require_binary(self.binary, "Prometheus")
        for attempt in range(3):
            if not self.port or attempt:
                self.port = free_port()
            self.write_config()
            self._proc = ManagedProcess(self.name, self.argv(), log_path=self.workdir / "prometheus.log")
            self._proc.start()
            try:
                await wait_ready(f"{self.url}/-/ready", self._proc, self.start_timeout)
                return
            except ProcessStartError:
                if attempt < 2 and not self._proc.running and _address_in_use(self._proc):
                    continue
                self._proc.stop()
                raise

    async def reload(self) -> None:
        """Rewrite the config and rule files, then POST ``/-/reload``."""
        self.write_config()
        async with aiohttp.ClientSession() as session, session.post(f"{self.url}/-/reload") as response:
            if response.status != 200:
                raise RuntimeError(f"reload failed: HTTP {response.status}: {await response.text()}")

    def stop(self, *, grace: float = 10.0) -> None:
        """Stop the process (SIGTERM, then SIGKILL after ``grace`` seconds)."""
        if self._proc is not None:
            self._proc.stop(grace=grace)

    def cleanup(self) -> None:
        """Stop the process and remove the temporary work directory."""
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def log_text(self, tail_lines: int = 200) -> str:
        """The tail of the process log."""
        return self._proc.log_text(tail_lines) if self._proc is not None else ""

    # ---- HTTP API helpers ----------------------------------------------------------------------------------

    async def _get(self, path: str, params: Any = None) -> Any:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
            session.get(f"{self.url}/api/v1{path}", params=params) as response,
        ):
            body = await response.json(content_type=None)
            if response.status != 200 or body.get("status") != "success":
                raise RuntimeError(f"GET {path} -> HTTP {response.status}: {body}")
            return body["data"]

    async def query(self, expr: str) -> list[dict[str, Any]]:
        """Run an instant query and return ``data.result`` (a list of ``{metric, value}`` for vectors)."""
        data = await self._get("/query", {"query": expr})
        result: list[dict[str, Any]] = data["result"]
        return result

    async def alerts(self) -> list[dict[str, Any]]:
        """GET ``/api/v1/alerts``: active alerts (pending and firing) with labels, annotations and state."""
        data = await self._get("/alerts")
        result: list[dict[str, Any]] = data["alerts"]
        return result

    async def rule_groups(self) -> list[dict[str, Any]]:
        """GET ``/api/v1/rules``: the loaded rule groups."""
        data = await self._get("/rules")
        result: list[dict[str, Any]] = data["groups"]
        return result

    async def targets(self) -> list[dict[str, Any]]:
        """GET ``/api/v1/targets``: the active scrape targets with their health."""
        data = await self._get("/targets")
        result: list[dict[str, Any]] = data["activeTargets"]
        return result

    async def alertmanagers(self) -> list[str]:
        """GET ``/api/v1/alertmanagers``: the URLs of the Alertmanagers Prometheus currently sends to."""
        data = await self._get("/alertmanagers")
        return [a["url"] for a in data["activeAlertmanagers"]]
