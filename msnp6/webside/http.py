"""What every page's answer shares: the headers, the form fields, the client's address."""
from __future__ import annotations

from twisted.web.server import Request

#: Sent with every page: no framing, no script, forms only back to this site.
HEADERS = {
    b"content-type": b"text/html; charset=utf-8",
    b"cache-control": b"no-store",
    b"x-content-type-options": b"nosniff",
    b"x-frame-options": b"DENY",
    b"referrer-policy": b"same-origin",
    b"content-security-policy": b"default-src 'none'; form-action 'self'; frame-ancestors 'none'",
}


def field(request: Request, name: str) -> str:
    values = (request.args or {}).get(name.encode("ascii"))
    return values[0].decode("utf-8", "replace") if values else ""


def host(request: Request) -> str:
    return str(getattr(request.getClientAddress(), "host", "?"))


def peer(request: Request) -> str:
    address = request.getClientAddress()
    return f"{getattr(address, 'host', '?')}:{getattr(address, 'port', '?')}"


def respond(request: Request, code: int, body: bytes, location: str | None = None) -> bytes:
    request.setResponseCode(code)
    for name, value in HEADERS.items():
        request.setHeader(name, value)
    if location is not None:
        request.setHeader(b"location", location.encode("ascii"))
    return body
