"""Web chat: the embeddable widget (static/) and its session + websocket endpoints."""

from connectors.webchat.server import setup_webchat

__all__ = ["setup_webchat"]
