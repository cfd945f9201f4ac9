"""A request body cap for the server's HTTP listeners (admin port, web side).

twisted.web keeps a whole request body (in memory, or in a temporary file past 100 KB) before a
resource sees it, so without a cap one client can fill the disk or the memory of the process.
The forms and JSON bodies these listeners take are a few KB; a body declared or grown past the
cap gets ``413`` and the connection is closed before more is read (what Synapse does too)."""
from __future__ import annotations

from io import BytesIO
from typing import Any

from twisted.web.server import Request, Site

TOO_LARGE = (b"HTTP/1.1 413 Payload Too Large\r\nconnection: close\r\ncontent-type: text/plain\r\n"
             b"content-length: 24\r\n\r\nthe request is too large")


class BoundedRequest(Request):
    """A request whose body may be at most ``site.max_body`` bytes."""

    too_large = False

    def gotLength(self, length: int | None) -> None:
        if length is not None and length > self._cap():
            self._refuse()
            return
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        if self.too_large:  # what arrived with the refused body; the connection is closing
            return
        assert self.content is not None
        if self.content.tell() + len(data) > self._cap():
            self._refuse()
            return
        super().handleContentChunk(data)

    def process(self) -> None:
        # The rest of a refused body may have come in the same read: never serve it.
        if not self.too_large:
            super().process()

    def _cap(self) -> int:
        return int(getattr(getattr(self.channel, "site", None), "max_body", DEFAULT_MAX_BODY))

    def _refuse(self) -> None:
        self.too_large = True
        self.content = BytesIO()
        transport = self.channel.transport
        if transport is None:
            return
        transport.write(TOO_LARGE)
        transport.loseConnection()


DEFAULT_MAX_BODY = 64 * 1024


class BoundedSite(Site):
    """A quiet site (no access line per request: probes and page views would drown the log)
    whose request bodies are capped at ``max_body`` bytes."""

    noisy = False
    requestFactory = BoundedRequest

    def __init__(self, resource: Any, max_body: int = DEFAULT_MAX_BODY) -> None:
        super().__init__(resource)
        self.max_body = max_body

    def log(self, request: Any) -> None:
        pass
