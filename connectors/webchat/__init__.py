"""The web chat channel: the widget and its session + websocket endpoints."""

from connectors.webchat.server import WebchatChannel

__all__ = ["WebchatChannel"]
