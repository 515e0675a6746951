"""Fixtures of the enrichment tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from alert_router.config import Config
from alert_router.enrich.stage import EnrichmentStage
from alert_router.metrics import Metrics


@pytest.fixture
async def make_stage() -> AsyncIterator[Callable[[Config], EnrichmentStage]]:
    """``make_stage(config)``: an enrichment stage closed after the test."""
    stages: list[EnrichmentStage] = []

    def make(config: Config) -> EnrichmentStage:
        stage = EnrichmentStage(config, Metrics())
        stages.append(stage)
        return stage

    yield make
    for stage in stages:
        await stage.aclose()
