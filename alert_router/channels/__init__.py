"""Receiver types, wired explicitly: one line per type in :data:`REGISTRY`, no discovery by name."""

from __future__ import annotations

from alert_router.channels import console, discord, email, file, opsgenie, pagerduty, slack, teams, telegram, webhook
from alert_router.channels.base import Channel, ChannelContext, ChannelError, ChannelType, MessageRef, RateLimit

REGISTRY: dict[str, ChannelType] = {
    console.TYPE.key: console.TYPE,
    file.TYPE.key: file.TYPE,
    slack.TYPE.key: slack.TYPE,
    telegram.TYPE.key: telegram.TYPE,
    email.TYPE.key: email.TYPE,
    webhook.TYPE.key: webhook.TYPE,
    pagerduty.TYPE.key: pagerduty.TYPE,
    opsgenie.TYPE.key: opsgenie.TYPE,
    teams.TYPE.key: teams.TYPE,
    discord.TYPE.key: discord.TYPE,
}
"""Every receiver type by its YAML key."""

__all__ = ["REGISTRY", "Channel", "ChannelContext", "ChannelError", "ChannelType", "MessageRef", "RateLimit"]
