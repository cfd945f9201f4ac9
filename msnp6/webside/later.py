"""Answering a page once a Deferred has the answer: nothing is written to a browser that has
gone meanwhile, and a store failure is one log line and a 503 page."""
from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, FirstError
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.server import NOT_DONE_YET, Request

from ..store.faults import log_store_failure
from . import pages
from .http import respond

log = Logger()


def answer_later(request: Request, answer: "Deferred[tuple[int, bytes]]", what: str) -> Any:
    """Send ``answer``'s (status, page) when it comes; for a render method to return."""
    gone: list[bool] = []
    request.notifyFinish().addErrback(lambda _: gone.append(True))

    def finish(result: tuple[int, bytes]) -> None:
        if not gone:
            request.write(respond(request, *result))
            request.finish()

    def failed(failure: Failure) -> tuple[int, bytes]:
        if failure.check(FirstError):
            failure = failure.value.subFailure  # type: ignore[union-attr]
        log_store_failure(log, failure, "web {page}: the store failed", page=what)
        return 503, pages.error("Unavailable", "Please try again in a minute.")

    answer.addErrback(failed).addCallback(finish)
    return NOT_DONE_YET
