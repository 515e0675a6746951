"""Pytest fixtures for the incident and team-chat stand-ins: PagerDuty, Opsgenie, Microsoft Teams, Discord.

* ``pagerduty_standin`` — a started :class:`~tests.standins.pagerduty.PagerDutyStandin` (``routing_key``, ``url``).
* ``opsgenie_standin`` — a started :class:`~tests.standins.opsgenie.OpsgenieStandin` (``api_key``, ``base_url``).
* ``teams_standin`` — a started :class:`~tests.standins.teams.TeamsStandin` (``webhook_url``).
* ``discord_standin`` — a started :class:`~tests.standins.discord.DiscordStandin` (``webhook_url``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.standins.discord import DiscordStandin
from tests.standins.opsgenie import OpsgenieStandin
from tests.standins.pagerduty import PagerDutyStandin
from tests.standins.teams import TeamsStandin


@pytest.fixture
async def pagerduty_standin() -> AsyncIterator[PagerDutyStandin]:
    """A PagerDuty Events API v2 stand-in on loopback."""
    async with PagerDutyStandin() as standin:
        yield standin


@pytest.fixture
async def opsgenie_standin() -> AsyncIterator[OpsgenieStandin]:
    """An Opsgenie Alert API stand-in on loopback."""
    async with OpsgenieStandin() as standin:
        yield standin


@pytest.fixture
async def teams_standin() -> AsyncIterator[TeamsStandin]:
    """A Teams Workflows webhook stand-in on loopback."""
    async with TeamsStandin() as standin:
        yield standin


@pytest.fixture
async def discord_standin() -> AsyncIterator[DiscordStandin]:
    """A Discord webhook stand-in on loopback."""
    async with DiscordStandin() as standin:
        yield standin
