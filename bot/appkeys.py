"""Typed keys for what the gateway app holds (aiohttp web.AppKey, not string keys).

Part of the composition root: route handlers in connectors/ and the console get what they need
injected at start and never read these keys.
"""

from __future__ import annotations

from aiohttp import web

from bot.broker import Broker
from bot.config import Settings
from bot.service import ConversationService
from bot.store import Store
from bot.wiring import Engine
from connectors.base import ChannelConnector
from connectors.webchat import WebchatChannel
from handoff.console import ConsoleContext
from handoff.desk import AgentDesk

SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", Store)
BROKER = web.AppKey("broker", Broker)
SERVICE = web.AppKey("service", ConversationService)
DESK = web.AppKey("desk", AgentDesk)
ENGINE = web.AppKey("engine", Engine)
WEBCHAT = web.AppKey("webchat", WebchatChannel)
CONSOLE_CONTEXT = web.AppKey("console_context", ConsoleContext)
CONNECTORS: web.AppKey[list[ChannelConnector]] = web.AppKey("connectors")
