"""Typed keys for what the gateway app holds (aiohttp web.AppKey, not string keys)."""

from __future__ import annotations

from aiohttp import web

from bot.broker import Broker
from bot.config import Settings
from bot.service import ConversationService
from bot.store import Store

SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", Store)
BROKER = web.AppKey("broker", Broker)
SERVICE = web.AppKey("service", ConversationService)
