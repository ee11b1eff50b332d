"""Typed keys for what the gateway app holds (aiohttp web.AppKey, not string keys)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from bot.broker import Broker
from bot.config import Settings
from bot.service import ConversationService
from bot.store import Store

SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", Store)
BROKER = web.AppKey("broker", Broker)
SERVICE = web.AppKey("service", ConversationService)

if TYPE_CHECKING:
    from connectors.base import ChannelConnector

CONNECTORS: web.AppKey[list[ChannelConnector]] = web.AppKey("connectors")
