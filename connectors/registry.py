"""Which channel connectors run: every channel whose settings are filled in."""

from __future__ import annotations

from aiohttp import web

from bot.config import Settings
from connectors.base import ChannelConnector


def build_connectors(settings: Settings, app: web.Application) -> list[ChannelConnector]:
    """Connectors for the enabled channels, routes added to ``app``. A channel's module (and its
    client library) is imported only when the channel is on: a lazy load, not a cycle."""
    connectors: list[ChannelConnector] = []
    if settings.channels.telegram.enabled:
        from connectors.telegram import TelegramConnector

        connectors.append(TelegramConnector(settings.channels.telegram))
    if settings.channels.slack.enabled:
        from connectors.slack import SlackConnector

        connectors.append(SlackConnector(settings.channels.slack))
    for connector in connectors:
        connector.add_routes(app)
    return connectors


def channel_summary(settings: Settings) -> dict[str, str]:
    """One line per channel for the start-up log: on (and how) or off (and why)."""
    tg, slack = settings.channels.telegram, settings.channels.slack
    return {
        "webchat": "on",
        "telegram": (
            ("on, webhook" if tg.public_url else "on, polling")
            if tg.enabled
            else "off (no channels.telegram.token / TELEGRAM_BOT_TOKEN)"
        ),
        "slack": "on" if slack.enabled else "off (no channels.slack.bot_token / SLACK_BOT_TOKEN)",
    }
