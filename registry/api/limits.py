"""Pure ASGI middleware that refuses request bodies over a size limit with a 413 problem."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when a streamed body passes its limit; FastAPI re-raises it."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body exceeds the limit of {limit} bytes")


def _problem(limit: int) -> bytes:
    return json.dumps(
        {
            "type": "urn:mmgov:problem:content-too-large",
            "title": "Content Too Large",
            "status": 413,
            "detail": f"request body exceeds the limit of {limit} bytes",
        }
    ).encode()


class BodySizeLimit:
    """Refuse bodies over ``limit`` bytes: by Content-Length up front, and by counting chunks.

    ``overrides`` give larger limits to paths matching a regex (the reference upload).
    """

    def __init__(
        self, app: ASGIApp, *, limit: int, overrides: Sequence[tuple[str, int]] = ()
    ) -> None:
        self.app = app
        self.limit = limit
        self.overrides = [(re.compile(pattern), size) for pattern, size in overrides]

    def _limit_for(self, path: str) -> int:
        for pattern, size in self.overrides:
            if pattern.fullmatch(path):
                return size
        return self.limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit_for(scope["path"])
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared < 0 or declared > limit:
                    await self._refuse(send, limit)
                    return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            # The app did not handle it (it read the body outside FastAPI's parser).
            if started:
                raise
            await self._refuse(send, limit)

    @staticmethod
    async def _refuse(send: Send, limit: int) -> None:
        body = _problem(limit)
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/problem+json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


__all__ = ["BodySizeLimit", "BodyTooLarge"]
