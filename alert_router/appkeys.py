"""Typed application state (aiohttp ``AppKey``s), shared by the endpoints and the workers."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from alert_router.channels.base import Channel
from alert_router.config import Config
from alert_router.deadman import DeadmanSwitch
from alert_router.metrics import Metrics
from alert_router.store.base import Store


@dataclass
class Runtime:
    """Everything a running service holds."""

    config: Config
    store: Store
    metrics: Metrics
    owner: str
    channels: dict[str, Channel] = field(default_factory=dict)
    wake_ingest: asyncio.Event = field(default_factory=asyncio.Event)
    services: dict[str, Any] = field(default_factory=dict)
    ready: bool = False
    deadman: DeadmanSwitch | None = None


RUNTIME = web.AppKey("runtime", Runtime)
