"""A scripted Rasa for tests that need bot turns without a trained model."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bot.rasa_client import GATEWAY_WEBHOOK


class ScriptedRasa:
    """A Rasa that speaks the gateway channel: answers every message with "ok" (and buttons,
    when scripted for that text); the NLU is looked up by the message text."""

    def __init__(
        self,
        nlu: dict[str, tuple[str, float]],
        buttons: dict[str, list[dict[str, str]]] | None = None,
        customs: dict[str, dict[str, Any]] | None = None,
        images: dict[str, str] | None = None,
    ) -> None:
        self.nlu = nlu
        self.buttons = buttons or {}  # message text -> buttons of the answer
        self.customs = customs or {}  # message text -> custom payload of the answer
        self.images = images or {}  # message text -> the URL of an image response after "ok"
        self.received: list[str] = []  # every message text, as the gateway sent it
        self.metadata: list[dict[str, Any]] = []  # the metadata that came with each
        self.tracker_reads = 0
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _webhook(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.received.append(body["message"])
        self.metadata.append(body.get("metadata") or {})
        intent, confidence = self.nlu.get(body["message"], ("chitchat", 0.99))
        reply: dict[str, Any] = {"recipient_id": body["sender"], "text": "ok"}
        if body["message"] in self.buttons:
            reply["buttons"] = self.buttons[body["message"]]
        if body["message"] in self.customs:
            reply["custom"] = self.customs[body["message"]]
        messages = [reply]
        if body["message"] in self.images:
            messages.append({"recipient_id": body["sender"], "image": self.images[body["message"]]})
        return web.json_response(
            {
                "messages": messages,
                "nlu": {"intent": intent, "confidence": confidence},
                "paused": False,
            }
        )

    async def _tracker(self, request: web.Request) -> web.Response:
        self.tracker_reads += 1
        return web.json_response({"slots": {}, "latest_message": {}, "paused": False})

    async def _events(self, request: web.Request) -> web.Response:
        return web.json_response({})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post(GATEWAY_WEBHOOK, self._webhook)
        app.router.add_get("/conversations/{sender}/tracker", self._tracker)
        app.router.add_post("/conversations/{sender}/tracker/events", self._events)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
