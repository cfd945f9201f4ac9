"""The HTTP listeners' body cap over real sockets: a body declared or sent past the cap gets
``413`` and the connection is closed before more is read; the server keeps serving; and a unit
check on StringTransport that what came in the same read as a refused body is never served."""
from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from twisted.internet.testing import StringTransport
from twisted.web.resource import Resource

from msnp6.http_body import BoundedSite
from msnp6.testing import ServerProcess
from msnp6.web import MAX_BODY


@pytest.fixture(scope="module")
def server(tmp_path_factory, key_file) -> Iterator[ServerProcess]:
    proc = ServerProcess("sqlite:///" + str(tmp_path_factory.mktemp("body") / "db.sqlite"), key_file,
                         tmp_path_factory.mktemp("body-run"), web=True, admin=True)
    proc.start()
    yield proc
    proc.stop()


def exchange(port: int, head: bytes, body: bytes) -> bytes:
    """Send ``head`` and as much of ``body`` as the server takes; everything it answers."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(head)
        try:
            s.sendall(body)
        except OSError:  # the server closed while the body was still going out
            pass
        answer = b""
        try:
            while chunk := s.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
        return answer


def post_head(path: str, length: int | None) -> bytes:
    framing = f"content-length: {length}" if length is not None else "transfer-encoding: chunked"
    return (f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/x-www-form-urlencoded\r\n"
            f"{framing}\r\n\r\n").encode()


def chunked(data: bytes, size: int = 8192) -> bytes:
    parts = [b"%x\r\n%s\r\n" % (len(data[i:i + size]), data[i:i + size]) for i in range(0, len(data), size)]
    return b"".join(parts) + b"0\r\n\r\n"


@pytest.mark.parametrize("listener,path,cap", [("web", "/profile", 64 * 1024), ("admin", "/mail", MAX_BODY)])
def test_a_declared_length_past_the_cap_is_refused_before_the_body(server, listener, path, cap):
    answer = exchange(server.ports[listener], post_head(path, 50 * 1024 * 1024), b"")
    assert answer.startswith(b"HTTP/1.1 413 ")


@pytest.mark.parametrize("listener,path,cap", [("web", "/profile", 64 * 1024), ("admin", "/mail", MAX_BODY)])
def test_a_chunked_body_growing_past_the_cap_is_refused(server, listener, path, cap):
    answer = exchange(server.ports[listener], post_head(path, None), chunked(b"a=" + b"x" * (cap + 10_000)))
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b"HTTP/1.1 200" not in answer and b"HTTP/1.1 403" not in answer


def test_a_body_within_the_cap_is_served_and_the_server_keeps_serving(server):
    exchange(server.ports["web"], post_head("/profile", 10_000_000), b"x" * 100_000)
    body = b"first=Ann"
    answer = exchange(server.ports["web"], post_head("/profile", len(body)).replace(
        b"HTTP/1.1\r\n", b"HTTP/1.1\r\nconnection: close\r\n", 1), body)
    # Not signed in: the page says so (not 413).
    assert answer.startswith(b"HTTP/1.1 ") and not answer.startswith(b"HTTP/1.1 413")
    assert exchange(server.ports["admin"], b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
                    b"").startswith(b"HTTP/1.1 200")


class Counting(Resource):
    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.served = 0

    def render_POST(self, request) -> bytes:
        self.served += 1
        return b"ok"


def capped_channel(max_body: int) -> tuple[Counting, Any, StringTransport]:
    """A BoundedSite's channel on a StringTransport, in front of a resource counting its POSTs."""
    resource = Counting()
    channel = BoundedSite(resource, max_body=max_body).buildProtocol(None)
    transport = StringTransport()
    channel.makeConnection(transport)
    return resource, channel, transport


def test_the_rest_of_a_refused_body_in_the_same_read_is_never_served():
    resource, channel, transport = capped_channel(10)
    body = b"x" * 11
    channel.dataReceived(post_head("/", len(body)) + body)
    channel.dataReceived(post_head("/", None) + chunked(b"y" * 11, size=6))
    assert transport.value().startswith(b"HTTP/1.1 413 ")
    assert transport.disconnecting
    assert resource.served == 0


def test_a_body_at_the_cap_is_served():
    resource, channel, transport = capped_channel(10)
    channel.dataReceived(post_head("/", 10) + b"x" * 10)
    assert resource.served == 1
    assert b" 200 " in transport.value().split(b"\r\n", 1)[0]
