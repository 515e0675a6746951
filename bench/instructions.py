"""Instructions per alert on the shipped configuration under callgrind: a CPU measure the neighbours do not move.

Usage: .venv/bin/python bench/instructions.py [--alerts 5000] [--baseline /path/to/other/checkout]

The machine is shared, so CPU seconds per alert move with the load of other work (caches, frequency);
instruction counts do not. The service runs under ``valgrind --tool=callgrind`` (Debian package
``valgrind``) with instrumentation off while it starts; it is switched on (and the counts zeroed) once
it answers, the alerts are posted (warnings in new groups of 10, as ``bench/cpu.py``), every queue is
awaited empty (polled once a second) and the count is dumped. Under valgrind threads run one at a time
and ~50x slower, so batch sizes (and with them the number of commits) differ from a real run: compare
checkouts with this, do not quote it as speed.
Reported: instructions per alert (``Ir``), and with ``--annotate`` the top functions of each run.
Loopback only; it stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import os
import subprocess
import sys
import time
from pathlib import Path

from common import ShippedService, drive, queue_depth, table, wait_http
from cpu import ALERTS_PER_BODY, bodies


class CallgrindService(ShippedService):
    """The shipped service under callgrind, instrumented only from :meth:`control` ("-i on") on."""

    async def start(self) -> None:
        self.out = self.tmp / "callgrind.out"
        with (self.tmp / "log").open("ab") as log:
            self.proc = subprocess.Popen(
                ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={self.out}",
                 sys.executable, "-m", "alert_router", "serve", "--config", str(self.config_path)],
                env=self.env, stdout=subprocess.DEVNULL, stderr=log,
            )
        await wait_http(self.url + "/readyz", timeout=600)

    def control(self, *flags: str) -> None:
        assert self.proc is not None
        subprocess.run(["callgrind_control", *flags, str(self.proc.pid)], check=True, capture_output=True, timeout=120)


def total_ir(pattern: str) -> int:
    """Instructions counted in the dumps (their ``totals:`` lines; ``summary:`` is not reliable after ``-z``)."""
    total = 0
    for path in glob.glob(pattern):
        for line in Path(path).read_text(errors="replace").splitlines():
            if line.startswith("totals:"):
                total += int(line.split()[1])
    return total


async def measure(name: str, pythonpath: str | None, n_alerts: int, annotate: bool) -> list[str]:
    svc = CallgrindService(env={"PYTHONPATH": pythonpath or ""})
    await svc.start()
    try:
        batch = bodies(n_alerts, name)
        svc.control("-i", "on")
        svc.control("-z")
        t0 = time.perf_counter()
        res = await drive(svc.url + "/webhook", batch, connections=8, seconds=1200, max_requests=len(batch),
                          headers={"Authorization": f"Bearer {svc.token}"})
        while True:  # polled once a second: each poll is work the count includes (valgrind stretches the wall)
            depth = await queue_depth(svc.url)
            if depth and all(v == 0 for v in depth.values()):
                break
            if time.perf_counter() - t0 > 1800:
                raise RuntimeError("queues did not drain within 1800 s under valgrind")
            await asyncio.sleep(1.0)
        wall = time.perf_counter() - t0
        svc.control("-i", "off")
        svc.control("-d")
        ir = total_ir(f"{svc.out}*")
        alerts = res.requests * ALERTS_PER_BODY
        if annotate:
            for path in sorted(glob.glob(f"{svc.out}*")):
                top = subprocess.run(["callgrind_annotate", "--inclusive=no", path], capture_output=True,
                                     text=True, check=False).stdout
                print(f"--- {name}: {path}\n" + "\n".join(top.splitlines()[:60]))
        return [name, f"{alerts:,}", f"{res.errors}", f"{wall:.0f}", f"{ir / 1e9:.2f}", f"{ir / alerts / 1e3:.0f}"]
    finally:
        svc.stop()


async def main(args: argparse.Namespace) -> None:
    servers: list[tuple[str, str | None]] = [("this-checkout", None)]
    if args.baseline:
        servers.insert(0, ("baseline", args.baseline))
    rows = [await measure(name, path, args.alerts, args.annotate) for name, path in servers]
    print(f"shipped alert-router.yaml under callgrind, {args.alerts:,} HighModelLatency warnings in new groups of"
          f" {ALERTS_PER_BODY}, 8 connections, loopback")
    print(table(["server", "alerts", "errors", "wall s (valgrind)", "G instructions", "k instructions/alert"], rows))


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    ap.add_argument("--alerts", type=int, default=5000)
    ap.add_argument("--baseline", help="another checkout of alert-router (e.g. a worktree of main)")
    ap.add_argument("--annotate", action="store_true", help="print the top functions (C level) of each run")
    args = ap.parse_args()
    if args.baseline:
        args.baseline = os.path.realpath(args.baseline)
    return args


if __name__ == "__main__":
    asyncio.run(main(parse()))
