"""Crash benchmark: random SIGKILLs while a run of alert groups fires and resolves into Slack (loopback only).

Usage: .venv/bin/python bench/crashes.py [--kills 20] [--groups 200] [--per-group 10] [--postgres]
       [--baseline PATH] [--seed 1]

``--groups`` Alertmanager groups of ``--per-group`` alerts (2,000 alerts by default) are POSTed as firing
webhooks, then each group is POSTed again resolved. Meanwhile the service is SIGKILLed ``--kills`` times at
random moments (0.3 to 2 s after it last became ready) and started again at once; the sender retries a webhook
until one answers 2xx, as Alertmanager does. Then the bench waits until every queue is empty and reads what
the Slack stand-in (tests/standins/slack.py) holds in the channel.

Everything routes to one ``slack`` receiver pointing at the stand-in on 127.0.0.1. The stand-in answers every
request 0.1 to 0.3 s after it has acted on it (the time Slack takes), which is the window in which a kill leaves a
posted message whose reference the service never stored. Storm control is off and the receiver's rate limit is
raised to 50 messages/s (the bench measures what crashes do, not Slack's 1 message/s per channel).

Reported per code tree (this one, and ``--baseline PATH``: another checkout run side by side with the same
seed, e.g. ``git worktree add --detach ../base a0250a2``) and per store (SQLite, one process; with
``--postgres`` also two replicas on one PostgreSQL database, a random one killed each time):

* alerts sent: alerts in firing webhooks the service accepted;
* messages: top-level Slack messages posted (thread replies are not counted);
* duplicates: groups with more than one top-level message;
* FIRING after resolve: messages that still say FIRING once every group has resolved;
* resolves lost: groups none of whose messages says RESOLVED;
* alerts lost: accepted firing alerts whose id never appeared in any message;
* history lookups: ``conversations.history`` requests (a re-claimed delivery looking for its earlier message).

PostgreSQL: ``$PGDSN`` (an admin DSN that may create databases), else 127.0.0.1:5432 if it answers; a new
database per run, dropped at the end. Each run is bounded by ``--timeout`` seconds; everything stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web
from common import ROOT, free_port, table

sys.path.insert(0, str(ROOT))
from tests.e2e.service import ServiceProcess
from tests.procs.postgres import acreate_database, adrop_database, database_of, find_shared_server
from tests.standins.slack import SlackStandin

TOKEN = "bench-token"
SLACK_TOKEN = "xoxb-crash-bench"
CHANNEL = "C0ALERTS"
GROUP_NAME = re.compile(r"CrashBench(\d{4})")
SHORT_ID = re.compile(r"\b([0-9a-f]{8})\b")


class SlowSlack(SlackStandin):
    """The Slack stand-in, answering each request ``latency`` seconds (±50%) after it acted on it."""

    def __init__(self, latency: float, rng: random.Random) -> None:
        super().__init__(token=SLACK_TOKEN, channels=(CHANNEL,))
        self.latency = latency
        self.rng = rng

    async def _handle(self, request: web.Request) -> web.Response:
        response = await super()._handle(request)
        if self.latency:
            await asyncio.sleep(self.latency * self.rng.uniform(0.5, 1.5))
        return response


def replica(code: Path, tmp: Path, index: int, slack_url: str, store: str | None) -> ServiceProcess:
    """``python -m alert_router serve`` from the code tree ``code``, with its own config file and port.

    ``PYTHONSAFEPATH`` keeps the working directory off ``sys.path``, so ``PYTHONPATH`` decides which tree runs.
    """
    port = free_port()
    config = tmp / f"alert-router-{index}.yaml"
    store_lines = f"store: {store}\npostgres: {{pool_max: 5}}\n" if store else ""
    config.write_text(
        f"listen: 127.0.0.1:{port}\ndata_dir: {tmp / f'data-{index}' if store else tmp / 'data'}\n"
        f"auth: {{bearer_token: {TOKEN}}}\nlog: {{level: warning}}\n{store_lines}"
        "ingest: {poll_interval: 0.2}\n"
        "delivery: {workers: 16, storm: {threshold: 0}}\n"
        "receivers:\n"
        "  - name: slack\n"
        "    rate_limit: {rate: 50, burst: 10}\n"
        f"    slack: {{token: {SLACK_TOKEN}, channel: {CHANNEL}, api_url: '{slack_url}', timeout: 5}}\n"
        f"rules: {tmp / 'rules'}\nrunbooks: {tmp / 'runbooks'}\n"
    )
    return ServiceProcess(config, port, env={"PYTHONPATH": str(code), "PYTHONSAFEPATH": "1"})


def alive(svc: ServiceProcess) -> bool:
    """Whether the process is running (a killed one is restarted by the killer)."""
    return svc.proc is not None and svc.proc.poll() is None


def webhook(group: int, per_group: int, status: str) -> tuple[bytes, list[str]]:
    """One Alertmanager group (alertname ``CrashBenchNNNN``), firing or resolved; its fingerprints."""
    name = f"CrashBench{group:04d}"
    alerts = []
    fingerprints = []
    for i in range(per_group):
        fp = f"{group:04x}{i:04x}c0ffee00"
        fingerprints.append(fp)
        alerts.append({
            "status": status,
            "labels": {"alertname": name, "severity": "critical", "namespace": "prod", "pod": f"model-{group}-{i}"},
            "annotations": {"summary": f"model-{group}-{i} is down"},
            "startsAt": "2026-12-06T00:00:00Z",
            "endsAt": "2026-12-06T00:10:00Z" if status == "resolved" else "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus:9090/graph",
            "fingerprint": fp,
        })
    body = {
        "version": "4", "groupKey": f'{{}}:{{alertname="{name}"}}', "status": status, "receiver": "alert-router",
        "alerts": alerts, "groupLabels": {"alertname": name}, "commonLabels": {"alertname": name, "namespace": "prod"},
        "commonAnnotations": {}, "externalURL": "http://alertmanager:9093", "truncatedAlerts": 0,
    }
    return json.dumps(body).encode(), fingerprints


@dataclass
class Outcome:
    """What one run left in the Slack channel."""

    name: str
    kills: int
    alerts_sent: int
    messages: int
    duplicates: int
    stale_firing: int
    resolves_lost: int
    alerts_lost: int
    lookups: int
    seconds: float

    def cells(self) -> list[object]:
        return [self.name, self.kills, self.alerts_sent, self.messages, self.duplicates, self.stale_firing,
                self.resolves_lost, self.alerts_lost, self.lookups, self.seconds]


async def post_until_accepted(session: aiohttp.ClientSession, replicas: list[ServiceProcess], body: bytes,
                              rng: random.Random, deadline: float) -> None:
    """POST to a live replica until one answers 2xx (a killed one refuses the connection)."""
    while time.monotonic() < deadline:
        live = [r for r in replicas if alive(r)] or replicas
        target = rng.choice(live)
        try:
            async with session.post(target.url + "/webhook", data=body,
                                    headers={"Content-Type": "application/json"}) as resp:
                await resp.read()
                if 200 <= resp.status < 300:
                    return
        except (aiohttp.ClientError, OSError):
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError("a webhook was not accepted before the deadline")


async def queues_empty(session: aiohttp.ClientSession, replica: ServiceProcess) -> bool:
    try:
        async with session.get(replica.url + "/metrics") as r:
            text = await r.text()
    except (aiohttp.ClientError, OSError):
        return False
    depths = [float(line.split()[-1]) for line in text.splitlines() if line.startswith("alert_router_queue_depth{")]
    return bool(depths) and all(d == 0 for d in depths)


async def scenario(name: str, code: Path, store: str | None, replicas_n: int, args: argparse.Namespace) -> Outcome:
    rng = random.Random(args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="ar-bench-crash-"))
    (tmp / "rules").mkdir()
    (tmp / "runbooks").mkdir()
    (tmp / "rules" / "r.yaml").write_text("rules:\n  - name: all\n    match: []\n    receivers: [slack]\n")
    started = time.monotonic()
    deadline = started + args.timeout
    async with SlowSlack(args.latency, random.Random(args.seed + 1)) as slack:
        replicas = [replica(code, tmp, k, slack.base_url, store) for k in range(replicas_n)]
        try:
            for r in replicas:  # one after the other: the first applies the migrations
                await r.start()
            firing = [webhook(g, args.per_group, "firing") for g in range(args.groups)]
            resolved = [webhook(g, args.per_group, "resolved")[0] for g in range(args.groups)]
            kills = 0
            sending = True

            async def killer() -> None:
                nonlocal kills
                while kills < args.kills and time.monotonic() < deadline:
                    await asyncio.sleep(rng.uniform(0.3, 2.0))
                    victim = rng.choice(replicas)
                    victim.kill()
                    kills += 1
                    await victim.start()

            async def sender(session: aiohttp.ClientSession) -> None:
                nonlocal sending
                pace = 1.0 / args.rate
                for body, _ in firing:
                    await post_until_accepted(session, replicas, body, rng, deadline)
                    await asyncio.sleep(pace)
                await asyncio.sleep(args.gap)
                for body in resolved:
                    await post_until_accepted(session, replicas, body, rng, deadline)
                    await asyncio.sleep(pace)
                sending = False

            async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"},
                                             timeout=aiohttp.ClientTimeout(total=10)) as session:
                await asyncio.gather(killer(), sender(session))
                quiet = 0
                while quiet < 3:  # empty three polls in a row, on every replica
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{name}: queues not empty after {args.timeout:.0f}s")
                    empty = all([await queues_empty(session, r) for r in replicas])
                    quiet = quiet + 1 if empty else 0
                    await asyncio.sleep(0.3)
            seconds = time.monotonic() - started
        finally:
            for r in replicas:
                r.stop()
            if os.environ.get("BENCH_KEEP"):
                print(f"kept {tmp}", file=sys.stderr)
            else:
                shutil.rmtree(tmp, ignore_errors=True)
        return judge(name, slack, firing, kills, seconds)


def judge(name: str, slack: SlackStandin, firing: list[tuple[bytes, list[str]]], kills: int,
          seconds: float) -> Outcome:
    """Read the channel: duplicates, messages still FIRING, groups never resolved, alerts never shown."""
    top = [m for m in slack.messages[CHANNEL] if m.thread_ts is None]
    by_group: dict[int, list[str]] = {}
    for m in top:
        found = GROUP_NAME.search(m.text or json.dumps(m.blocks))
        if found:
            by_group.setdefault(int(found.group(1)), []).append(m.text)
    seen: set[str] = set()
    for req in slack.requests:
        if req.status == 200 and req.error is None and req.method in ("chat.postMessage", "chat.update"):
            seen.update(SHORT_ID.findall(json.dumps(req.params.get("blocks")) + str(req.params.get("text"))))
    all_ids = [fp[:8] for _, fps in firing for fp in fps]
    return Outcome(
        name=name, kills=kills, alerts_sent=len(all_ids), messages=len(top),
        duplicates=sum(1 for texts in by_group.values() if len(texts) > 1),
        stale_firing=sum(1 for texts in by_group.values() for t in texts if "FIRING" in t),
        resolves_lost=sum(1 for g in range(len(firing)) if not any("RESOLVED" in t for t in by_group.get(g, []))),
        alerts_lost=sum(1 for i in all_ids if i not in seen),
        lookups=sum(1 for req in slack.requests if req.method == "conversations.history"),
        seconds=seconds,
    )


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--groups", type=int, default=200)
    ap.add_argument("--per-group", type=int, default=10)
    ap.add_argument("--rate", type=float, default=20.0, help="webhooks per second sent")
    ap.add_argument("--gap", type=float, default=2.0, help="seconds between the last firing and the first resolve")
    ap.add_argument("--latency", type=float, default=0.2, help="the stand-in's answer delay (s, ±50%%)")
    ap.add_argument("--postgres", action="store_true", help="also two replicas on PostgreSQL")
    ap.add_argument("--baseline", type=Path, help="another checkout of alert-router, run with the same seed")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=300.0, help="bound of one run (s)")
    args = ap.parse_args()
    if args.groups > 9999:
        ap.error("--groups: at most 9999")

    trees = [("this tree", ROOT)]
    if args.baseline:
        base = args.baseline.resolve()
        if not (base / "alert_router" / "__main__.py").exists():
            ap.error(f"--baseline {base}: not an alert-router checkout")
        rev = subprocess.run(["git", "-C", str(base), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True).stdout.strip()
        trees.insert(0, (f"baseline {rev or base.name}", base))
    admin: str | None = None
    if args.postgres:
        admin = os.environ.get("PGDSN") or find_shared_server()
        if admin is None:
            print("PostgreSQL: none at $PGDSN or 127.0.0.1:5432; SQLite only", file=sys.stderr)
    print(f"{args.groups} groups x {args.per_group} alerts, firing then resolved; {args.kills} SIGKILLs per run; "
          f"Slack stand-in answering after {args.latency * 1000:.0f} ms ±50%; seed {args.seed}; "
          f"{os.cpu_count()} CPUs shared\n", flush=True)
    rows: list[Outcome] = []
    for label, code in trees:
        rows.append(await scenario(f"{label}, SQLite", code, None, 1, args))
        print(table(HEADERS, [rows[-1].cells()]).splitlines()[-1], flush=True)
        if admin:
            dsn = await acreate_database(admin)
            try:
                rows.append(await scenario(f"{label}, PostgreSQL x2", code, dsn, 2, args))
            finally:
                await adrop_database(admin, database_of(dsn))
            print(table(HEADERS, [rows[-1].cells()]).splitlines()[-1], flush=True)
    print()
    print(table(HEADERS, [r.cells() for r in rows]))
    print("\nmessages: top-level Slack messages; dup groups: groups with more than one; FIRING after resolve: "
          "messages still saying FIRING once every group resolved; history lookups: conversations.history requests")


HEADERS = ["run", "kills", "alerts sent", "messages", "dup groups", "FIRING after resolve", "resolves lost",
           "alerts lost", "history lookups", "seconds"]


if __name__ == "__main__":
    asyncio.run(main())
