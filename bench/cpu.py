"""CPU per alert on the shipped configuration: what the service spends, side by side with another checkout.

Usage: .venv/bin/python bench/cpu.py [--alerts 20000] [--baseline /path/to/other/checkout] [--profile DIR]
                                     [--rounds 1]

The machine is shared, so wall-clock throughput moves with the neighbours; the CPU seconds the service
process spends per alert do not (much). For each server (this checkout, and with ``--baseline`` the same
service imported from another checkout through ``PYTHONPATH``, in the same virtualenv), a fresh
``alert-router serve`` on the repository's ``alert-router.yaml`` gets ``--alerts`` warnings
(``HighModelLatency``, new groups of 10, each also a runbook trigger) posted by 16 connections as fast as it
accepts them; when every queue is empty, the service's user+system CPU seconds since it became ready are
divided by the alerts. Reported: µs of CPU per alert for accepting alone (a run with the workers idle is not
possible, so: CPU while posting until the inbox grew, see ``accept µs``), in total, and the wall time.

``--profile DIR`` also samples the service with py-spy (``pip install py-spy``; not in the lock) and writes
``DIR/<server>.txt``: the functions with the largest share of samples (inclusive and own).
Loopback only; it stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from common import ShippedService, alert_body, cpu_seconds, drive, table, wait_drained

ALERTS_PER_BODY = 10


def bodies(n_alerts: int, tag: str) -> list[bytes]:
    nonce = time.time_ns() & 0xFFFFFF
    return [
        alert_body("HighModelLatency", "warning", f"cpu-{tag}-{nonce}-{g}",
                   [f"{nonce:06x}{g:08x}{i:02x}" for i in range(ALERTS_PER_BODY)])
        for g in range(n_alerts // ALERTS_PER_BODY)
    ]


def summarize(raw: Path, out: Path, top: int = 45) -> None:
    """Inclusive and own sample shares per function from py-spy's collapsed stacks."""
    incl: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        frames = [f.split(" (")[0] + " (" + f.split(" (")[-1].split(":")[0].rsplit("/", 1)[-1] + ")"
                  for f in stack.split(";") if f]
        for f in set(frames):
            incl[f] += n
        if frames:
            own[frames[-1]] += n
    lines = [f"{total} samples", "", "inclusive:"]
    lines += [f"{100 * n / total:5.1f}%  {f}" for f, n in incl.most_common(top)]
    lines += ["", "own:"]
    lines += [f"{100 * n / total:5.1f}%  {f}" for f, n in own.most_common(top)]
    out.write_text("\n".join(lines) + "\n")


VARIANTS = {
    "shipped": "the shipped alert-router.yaml, rules/ and runbooks/ as they are",
    "no-runbooks": "the same without runbooks (rules name none)",
    "no-console": "the same with the console receiver replaced by nothing (file only)",
    "no-runbooks-no-console": "both: webhook, dedup, routing and the file receiver only",
}


def variant_config(svc: ShippedService, variant: str) -> None:
    """Point ``svc`` at a copy of the shipped configuration changed as ``variant`` says."""
    if variant == "shipped":
        return
    root = svc.config_path.parent
    d = svc.tmp / "config"
    (d / "rules").mkdir(parents=True)
    rules = (root / "rules" / "routing.yaml").read_text()
    if "no-runbooks" in variant:
        rules = re.sub(r"\n\s*runbooks: \[[^]]*\]", "", rules)
        (d / "runbooks").mkdir()
    else:
        shutil.copytree(root / "runbooks", d / "runbooks")
    if "no-console" in variant:
        rules = rules.replace("receivers: [console]", "receivers: [file]")
    (d / "rules" / "routing.yaml").write_text(rules)
    (d / "alert-router.yaml").write_text(svc.config_path.read_text())
    svc.config_path = d / "alert-router.yaml"


async def measure(name: str, pythonpath: str | None, args: argparse.Namespace, variant: str) -> list[str]:
    env = {"PYTHONPATH": pythonpath} if pythonpath else {"PYTHONPATH": ""}
    svc = ShippedService(env=env)
    variant_config(svc, variant)
    await svc.start()
    spy = None
    try:
        assert svc.proc is not None
        batch = bodies(args.alerts, name)
        if args.profile:
            raw = Path(args.profile) / f"{name}-{variant}.raw"
            spy = subprocess.Popen(
                ["py-spy", "record", "--pid", str(svc.proc.pid), "--format", "raw", "--rate", str(args.rate),
                 "--output", str(raw), "--nonblocking", *(["--gil"] if args.gil else [])],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            await asyncio.sleep(1.0)
        cpu0 = cpu_seconds(svc.proc.pid)
        t0 = time.perf_counter()
        res = await drive(svc.url + "/webhook", batch, connections=16, seconds=600, max_requests=len(batch),
                          headers={"Authorization": f"Bearer {svc.token}"})
        posted = time.perf_counter() - t0
        cpu_posted = cpu_seconds(svc.proc.pid) - cpu0
        await wait_drained(svc.url, timeout=900)
        wall = time.perf_counter() - t0
        cpu = cpu_seconds(svc.proc.pid) - cpu0
        alerts = res.requests * ALERTS_PER_BODY
        if spy is not None:
            spy.send_signal(2)
            spy.wait(60)
            summarize(raw, raw.with_suffix(".txt"))
        return [name, variant, f"{alerts:,}", f"{res.errors}", f"{posted:.1f}", f"{wall:.1f}", f"{alerts / wall:,.0f}",
                f"{cpu_posted / alerts * 1e6:.0f}", f"{cpu / alerts * 1e6:.0f}", f"{svc.rss_mb():.0f}"]
    finally:
        if spy is not None and spy.poll() is None:
            spy.kill()
        svc.stop()


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    ap.add_argument("--alerts", type=int, default=20_000)
    ap.add_argument("--baseline", help="another checkout of alert-router (e.g. a worktree of main)")
    ap.add_argument("--profile", help="directory for py-spy summaries")
    ap.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    ap.add_argument("--gil", action="store_true", help="profile only samples holding the GIL (Python CPU)")
    ap.add_argument("--variants", default="shipped", help=f"comma-separated, of {', '.join(VARIANTS)}")
    ap.add_argument("--rounds", type=int, default=1, help="alternate the servers this many times")
    args = ap.parse_args()
    if args.baseline:
        args.baseline = os.path.realpath(args.baseline)
    return args


async def main(args: argparse.Namespace) -> None:
    if args.profile:
        if not shutil.which("py-spy"):
            raise SystemExit("py-spy is not installed (pip install py-spy)")
        os.makedirs(args.profile, exist_ok=True)
    servers: list[tuple[str, str | None]] = [("this checkout", None)]
    if args.baseline:
        servers.insert(0, ("baseline", args.baseline))
    rows = []
    for _ in range(args.rounds):
        for variant in args.variants.split(","):
            for name, path in servers:
                rows.append(await measure(name.replace(" ", "-"), path, args, variant))
    print(f"shipped alert-router.yaml, {args.alerts:,} HighModelLatency warnings in new groups of {ALERTS_PER_BODY},"
          " 16 connections, loopback")
    print(table(["server", "config", "alerts", "errors", "posted s", "drained s", "alerts/s e2e",
                 "CPU µs/alert while posting", "CPU µs/alert total", "RSS MB"], rows))


if __name__ == "__main__":
    asyncio.run(main(parse()))
