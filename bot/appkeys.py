"""Typed keys for what the gateway app holds (aiohttp web.AppKey, not string keys)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from bot.broker import Broker
    from bot.config import Settings
    from bot.service import ConversationService
    from bot.store import Store

SETTINGS = web.AppKey["Settings"]("settings")
STORE = web.AppKey["Store"]("store")
BROKER = web.AppKey["Broker"]("broker")
SERVICE = web.AppKey["ConversationService"]("service")
