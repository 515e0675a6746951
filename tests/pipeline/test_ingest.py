"""The ingest stage on the shipped configuration: what one webhook body turns into, and how batches commit."""

import asyncio
import json
from pathlib import Path

from alert_router.config import load
from alert_router.metrics import Metrics
from alert_router.models import parse_payload
from alert_router.pipeline.ingest import WINDOW, Ingestor, planner
from alert_router.store.base import CommitResult, InboxItem
from tests.helpers import fixture_bytes, fixture_json, wait_for

ROOT = Path(__file__).resolve().parents[2]


def test_switched_off_receivers_get_no_work_on_the_shipped_config() -> None:
    """slack, telegram and email are off by default: a critical group plans nothing for them."""
    config = load(ROOT / "alert-router.yaml", {})
    assert not config.delivers_to("slack") and config.delivers_to("file")
    body = fixture_bytes("firing-service-down.json")
    payload = parse_payload(body)
    items = planner(config, payload, 0.0)(frozenset(a.fingerprint for a in payload.alerts))
    notify = sorted(i.dest for i in items if i.kind == "notify")
    assert notify == ["console", "file"]
    (runbook,) = [i for i in items if i.kind == "runbook"]  # one item per body and runbook, a trigger per alert
    assert runbook.dest == "restart-model-api" and len(runbook.payload["triggers"]) == len(payload.alerts)
    assert {i.priority for i in items if i.kind == "notify"} == {0}  # ModelServiceDown is critical


def test_switched_on_receivers_get_their_items() -> None:
    config = load(ROOT / "alert-router.yaml", {"SLACK_ENABLED": "true", "SLACK_BOT_TOKEN": "xoxb-1",
                                               "SLACK_CHANNEL": "C1"})
    payload = parse_payload(fixture_bytes("firing-service-down.json"))
    items = planner(config, payload, 0.0)(frozenset(a.fingerprint for a in payload.alerts))
    assert sorted(i.dest for i in items if i.kind == "notify") == ["console", "file", "slack"]


def test_priority_follows_the_most_severe_alert_of_the_receivers_share() -> None:
    config = load(ROOT / "alert-router.yaml", {})
    body = fixture_json("firing-latency-truncated.json")  # warnings
    payload = parse_payload(json.dumps(body).encode())
    items = planner(config, payload, 0.0)(frozenset(a.fingerprint for a in payload.alerts))
    assert {i.priority for i in items if i.kind == "notify"} == {2}


class CountingStore:
    """A stand-in store for the ingest loop: hands out bodies and records how many commits wait at once."""

    def __init__(self, items: list[InboxItem]) -> None:
        self.items = items
        self.waiting = 0
        self.most_waiting = 0
        self.order: list[int] = []
        self.release = asyncio.Event()

    async def claim_inbox(self, owner: str, limit: int, lease: float, now: float) -> list[InboxItem]:
        items, self.items = self.items[:limit], self.items[limit:]
        return items

    async def commit_inbox(self, item: InboxItem, owner: str, observed: object, plan: object, ttl: float,
                           now: float) -> CommitResult:
        self.order.append(item.id)  # queued for commit in this order
        self.waiting += 1
        self.most_waiting = max(self.most_waiting, self.waiting)
        await self.release.wait()
        self.waiting -= 1
        return CommitResult(True, frozenset(), 0)


async def test_a_claimed_batch_queues_several_commits_at_once_in_claim_order() -> None:
    """One body at a time made each wait for a commit (an fsync) of its own: a window of them is queued together."""
    body = fixture_bytes("firing-service-down.json")
    store = CountingStore([InboxItem(i, 0.0, body, f"g{i}", 1) for i in range(1, 21)])
    config = load(ROOT / "alert-router.yaml", {})
    ingestor = Ingestor(store, config, Metrics(), "test")  # type: ignore[arg-type]
    run = asyncio.ensure_future(ingestor.run_once(limit=20))
    await wait_for(lambda: store.waiting == WINDOW)
    assert store.order == list(range(1, WINDOW + 1))  # the first window, in claim order, before any committed
    store.release.set()
    assert await run == 20
    assert store.order == list(range(1, 21)) and store.most_waiting == WINDOW
