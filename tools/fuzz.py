#!/usr/bin/env python3
"""Socket-level fuzzer for msnp6: mutated DS/NS/SB transcripts against a server on loopback.

Each session replays a valid transcript (dispatch redirect, a full notification-server login
with list, presence and service commands, or a switchboard chat between two users) with a few
mutations (byte flips, truncation, split writes, duplicated/reordered/dropped lines, wrong
argument counts, odd numbers, control characters, over-long lines, payload length lies,
invalid UTF-8 and URL-encoding, random commands, abrupt close). Meanwhile a canary account,
never named by a fuzz session, stays logged in with known lists and status, a watcher checks
its presence, and a probe logs in afresh now and then. The run fails (exit 1) when the server
dies, writes a traceback or a log line with raw client bytes, stops answering, answers 500, or
the canary's state changes.

Written with asyncio: it is a client outside the server, needs hundreds of concurrent
connections with per-read deadlines, and asyncio's streams give that in the standard library.
Loopback only: every session connects from its own 127.x.y.z source address, so the server's
per-address limits see many small clients, not one; the canary and the probe use 127.0.0.1.

    python tools/fuzz.py --sessions 20000 --max-seconds 900 --seed 1
"""
from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import random
import re
import socket
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import attrs

from msnp6.auth import CredentialKey
from msnp6.store.schema import open_database
from msnp6.store.store import StoreCore
from msnp6.testing import CHALLENGE_ID, CHALLENGE_KEY, ServerProcess, md5_hex

VERSIONS = "MSNP6 MSNP5 MSNP4 CVR0"
PASSWORD = "fuzz-pw"
DOMAIN = "fuzz.example"
#: Accounts the fuzz sessions never name: their handles are not in the corpus.
CANARY = f"canary@{DOMAIN}"
WATCHER = f"watcher@{DOMAIN}"
FRIEND = f"friend@{DOMAIN}"
PROBE = f"probe@{DOMAIN}"
SERVER_PAYLOAD = frozenset({"MSG", "NOT", "IPG"})
MUTATIONS = ("flip", "truncate", "split", "dup", "reorder", "drop", "args", "number", "control", "long",
             "length", "utf8", "random", "close")
KINDS = ("ds", "ns", "sb")
#: What a server log must never contain.
LOG_ALARMS = ("Traceback (most recent call last)", "Unhandled Error", "Unhandled error in Deferred",
              "CRITICAL", "[Failure instance")
STEP_TIMEOUT = 1.5
SESSION_DEADLINE = 20.0


def fuzz_handle(i: int) -> str:
    return f"fuzz{i}@{DOMAIN}"


class Closed(Exception):
    """The server closed the connection."""


# -- the connection ------------------------------------------------------------------------------


class Conn:
    """One TCP connection: lines (and byte-counted payloads) in, raw bytes out; every read has a
    deadline. Remembers what it saw that later steps need (salt, cookies, challenge)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 record: list[tuple[str, bytes]], name: str, auto_challenge: bool = False) -> None:
        self.name = name
        self.reader = reader
        self.writer = writer
        self.record = record
        self.auto_challenge = auto_challenge
        self.inbox: asyncio.Queue[tuple[str, bytes | None] | None] = asyncio.Queue()
        self.closed = False
        self.trid = 0
        self.task = asyncio.ensure_future(self._read())

    @classmethod
    async def open(cls, host: str, port: int, source: str, record: list[tuple[str, bytes]], name: str,
                   auto_challenge: bool = False) -> Conn:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, local_addr=(source, 0), limit=1 << 20), 10)
        return cls(reader, writer, record, name, auto_challenge)

    async def _read(self) -> None:
        try:
            while True:
                raw = await self.reader.readuntil(b"\n")
                line = raw.rstrip(b"\r\n").decode("utf-8", "backslashreplace")
                payload = None
                words = line.split(" ")
                if words[0] in SERVER_PAYLOAD and words[-1].isdigit():
                    payload = await self.reader.readexactly(int(words[-1]))
                self.record.append((f"{self.name}<", raw + (payload or b"")))
                if self.auto_challenge and words[0] == "CHL" and len(words) == 3:
                    self.trid += 1
                    self.send(f"QRY {self.trid} {CHALLENGE_ID} 32", md5_hex(words[2] + CHALLENGE_KEY).encode())
                    continue
                self.inbox.put_nowait((line, payload))
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, OSError):
            pass
        finally:
            self.closed = True
            self.inbox.put_nowait(None)

    def next_trid(self) -> int:
        self.trid += 1
        return self.trid

    def write(self, data: bytes) -> None:
        self.record.append((f"{self.name}>", data))
        if not self.writer.is_closing():
            self.writer.write(data)

    def send(self, line: str, payload: bytes | None = None) -> None:
        self.write(line.encode("utf-8") + b"\r\n" + (payload or b""))

    async def recv(self, timeout: float) -> tuple[str, bytes | None]:
        try:
            item = await asyncio.wait_for(self.inbox.get(), timeout)
        except TimeoutError:
            raise TimeoutError("no answer in time") from None
        if item is None:
            self.inbox.put_nowait(None)
            raise Closed()
        return item

    async def expect(self, predicate: Callable[[str], bool], timeout: float) -> str:
        """The first line that matches; others are skipped."""
        deadline = time.monotonic() + timeout
        while True:
            line, _ = await self.recv(max(0.0, deadline - time.monotonic()))
            if predicate(line):
                return line

    def abort(self) -> None:
        transport = self.writer.transport
        if not transport.is_closing():
            transport.abort()

    async def close(self) -> None:
        self.abort()
        self.task.cancel()
        try:
            await self.task
        except (asyncio.CancelledError, Exception):
            pass


def starts(prefix: str) -> Callable[[str], bool]:
    return lambda line: line.startswith(prefix)


async def login(conn: Conn, handle: str, password: str, timeout: float = 10.0) -> None:
    """VER/INF/USR I/USR S up to the profile MSG; raises on anything else."""
    t = conn.next_trid()
    conn.send(f"VER {t} {VERSIONS}")
    await conn.expect(starts(f"VER {t} "), timeout)
    t = conn.next_trid()
    conn.send(f"INF {t}")
    await conn.expect(starts(f"INF {t} "), timeout)
    t = conn.next_trid()
    conn.send(f"USR {t} MD5 I {handle}")
    salt = (await conn.expect(starts(f"USR {t} "), timeout)).split(" ")[-1]
    t = conn.next_trid()
    conn.send(f"USR {t} MD5 S {md5_hex(salt + password)}")
    answer = await conn.expect(lambda line: line.split(" ")[1:2] == [str(t)], timeout)
    if not answer.startswith(f"USR {t} OK "):
        raise RuntimeError(f"login of {handle} refused: {answer!r}")
    await conn.expect(starts("MSG Hotmail Hotmail "), timeout)


async def sync_lists(conn: Conn, timeout: float = 10.0) -> tuple[dict[str, str], set[tuple[str, str]]]:
    """``SYN t 0``: the settings (GTC, BLP) and the (list, handle) pairs of the dump."""
    t = conn.next_trid()
    conn.send(f"SYN {t} 0")
    settings: dict[str, str] = {}
    entries: set[tuple[str, str]] = set()
    deadline = time.monotonic() + timeout
    while True:
        line, _ = await conn.recv(max(0.0, deadline - time.monotonic()))
        words = line.split(" ")
        if words[1:2] != [str(t)]:
            continue
        if words[0] in ("GTC", "BLP"):
            settings[words[0]] = words[-1]
        elif words[0] == "LST" and len(words) >= 6:
            if len(words) >= 7:
                entries.add((words[2], words[6]))
            if words[2] == "RL" and words[4] == words[5]:
                return settings, entries
        elif words[0] != "SYN" and words[0] != "PRP" and words[0] != "BPR":
            raise RuntimeError(f"unexpected answer to SYN: {line!r}")


# -- transcripts ---------------------------------------------------------------------------------


@attrs.define
class Context:
    """What a session has learned from the server so far."""

    handle: str
    password: str
    peer: str
    salt: str = "0"
    cookie: str = "0"
    sb_port: int = 0
    ring: list[str] = attrs.field(factory=list)  # session id, cookie of an RNG
    challenge: str = ""


#: A step: which connection, how to make the line (and payload) from the context, what answers it.
Build = Callable[[Context, int], tuple[str, bytes | None]]


@attrs.define
class Step:
    conn: str  # "ds", "ns", "a" (caller's switchboard), "b" (callee's switchboard)
    build: Build
    expect: str = "trid"  # "trid": a line with our TrID; "QNG"; "none": no answer; "close"
    wait_challenge: bool = False
    wait_ring: bool = False
    mutations: list[str] = attrs.field(factory=list)


def line(template: str, payload: bytes | None = None) -> Build:
    return lambda ctx, t: (template.format(t=t, ctx=ctx), payload)


def url_name(rng: random.Random) -> str:
    return rng.choice(["Fuzz%20User", "%E2%98%83", "a", "x" * 50, "%20", "Name%25"])


def ns_login_steps() -> list[Step]:
    return [
        Step("ns", line(f"VER {{t}} {VERSIONS}")),
        Step("ns", line("INF {t}")),
        Step("ns", line("USR {t} MD5 I {ctx.handle}")),
        Step("ns", lambda ctx, t: (f"USR {t} MD5 S {md5_hex(ctx.salt + ctx.password)}", None)),
    ]


def ns_extras(rng: random.Random, corpus: list[str]) -> list[Step]:
    """The logged-in part of an NS transcript, a random selection in random order."""
    other = rng.choice(corpus)
    text = b'<TEXT xml:space="preserve">hello &amp; bye</TEXT>'
    invite = b"Join me on Messenger"
    pool = [
        Step("ns", line(f"ADD {{t}} FL {other} {other}")),
        Step("ns", line(f"ADD {{t}} AL {other} {other}")),
        Step("ns", line(f"ADD {{t}} BL {rng.choice(corpus)} x")),
        Step("ns", line(f"REM {{t}} FL {other}")),
        Step("ns", line(f"REM {{t}} AL {other}")),
        Step("ns", line(f"REM {{t}} BL {rng.choice(corpus)}")),
        Step("ns", line(f"REA {{t}} {{ctx.handle}} {url_name(rng)}")),
        Step("ns", line(f"REA {{t}} {other} {url_name(rng)}")),
        Step("ns", line(f"BLP {{t}} {rng.choice(['AL', 'BL'])}")),
        Step("ns", line(f"GTC {{t}} {rng.choice(['A', 'N'])}")),
        Step("ns", line(f"PRP {{t}} {rng.choice(['PHH', 'PHW', 'PHM'])} {rng.choice(['555%201234', '1', ''])}")),
        Step("ns", line(f"PRP {{t}} MOB {rng.choice(['Y', 'N'])}")),
        Step("ns", line(f"URL {{t}} {rng.choice(['INBOX', 'COMPOSE a@b.c', 'PROFILE 1033', 'PASSWORD', 'N2PACCOUNT 1033'])}")),
        Step("ns", line("PNG"), expect="QNG"),
        Step("ns", line("XFR {t} SB")),
        Step("ns", line(f"PAG {{t}} {other} {len(text)}", text)),
        Step("ns", line("SND {t} someone@elsewhere.example 1033 MSMSGS MSMSGS")),
        Step("ns", line(f"SDC {{t}} someone@elsewhere.example 1033 MSMSGS MSMSGS X X Fuzz {len(invite)}", invite)),
        Step("ns", line(f"SDC {{t}} 1 1033 MSMSGS MSMSGS X X Fuzz {len(invite)}", invite)),
        Step("ns", line("FND {t} fname=Fuzz lname=* city=* state=* country=US")),
        Step("ns", line(f"CHG {{t}} {rng.choice(['BSY', 'AWY', 'IDL', 'BRB', 'PHN', 'LUN', 'HDN', 'NLN'])}")),
        Step("ns", line("SYN {t} 1")),
        Step("ns", line("LST {t} RL")),
        Step("ns", line("CVR {t} 0x0409 win 4.10 i386 MSNMSGR 4.7.3001 MSMSGS")),
    ]
    steps = rng.sample(pool, rng.randint(3, 10))
    if rng.random() < 0.25:
        steps.append(Step("ns", lambda ctx, t: (f"QRY {t} {CHALLENGE_ID} 32",
                                                 md5_hex(ctx.challenge + CHALLENGE_KEY).encode()),
                          wait_challenge=True))
    return steps


def ns_transcript(rng: random.Random, corpus: list[str]) -> list[Step]:
    return [*ns_login_steps(), Step("ns", line("SYN {t} 0")), Step("ns", line("CHG {t} NLN")),
            *ns_extras(rng, corpus), Step("ns", line("OUT"), expect="close")]


def ds_transcript(rng: random.Random, corpus: list[str]) -> list[Step]:
    return [Step("ds", line(f"VER {{t}} {VERSIONS}")), Step("ds", line("INF {t}")),
            Step("ds", line(f"USR {{t}} MD5 I {rng.choice(corpus)}"))]


def sb_transcript(rng: random.Random, corpus: list[str]) -> list[Step]:
    """Caller ``a`` opens a room with the cookie of an XFR SB and CALs ``b``, who answers the RNG."""
    def msg(ack: str, body: bytes) -> Build:
        return lambda ctx, t: (f"MSG {t} {ack} {len(body)}", body)

    text = b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\nX-MMS-IM-Format: FN=Arial\r\n\r\nhi"
    typing = b"MIME-Version: 1.0\r\nContent-Type: text/x-msmsgscontrol\r\nTypingUser: x@y.z\r\n\r\n\r\n"
    steps = [
        Step("a", line("USR {t} {ctx.handle} {ctx.cookie}")),
        Step("a", line("CAL {t} {ctx.peer}")),
        Step("b", lambda ctx, t: (f"ANS {t} {ctx.peer} {ctx.ring[1] if ctx.ring else '0'} "
                                  f"{ctx.ring[0] if ctx.ring else '0'}", None), wait_ring=True),
        Step("a", msg("N", text), expect="none"),
        Step("b", msg("U", typing), expect="none"),
        Step("a", msg("A", text)),
        Step("b", msg("N", text), expect="none"),
    ]
    if rng.random() < 0.3:
        steps.append(Step("a", line(f"CAL {{t}} {rng.choice(corpus)}")))
    steps += [Step("a", line("OUT"), expect="close"), Step("b", line("OUT"), expect="close")]
    return steps


# -- mutations -----------------------------------------------------------------------------------

ODD_NUMBERS = ("٣", "١٢", "۱۲", "１２", "²", "९", "-1", "-99999999999999999999", "9" * 40, "9" * 400,
               "0x10", "1e9", "+5", "007", " ", "", "1.5", "NaN", "٠", "⁹", "𝟗")
CONTROL = (b"\x00", b"\x01", b"\x07", b"\x08", b"\x0b", b"\x0c", b"\x1b", b"\x7f", b"\r", b"\n", b"\t",
           b"\r\n", b"\x00\x00\x00")
BAD_BYTES = (b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\x80", b"\xe2\x82", b"\xf4\x90\x80\x80", b"%", b"%zz",
             b"%0", b"%00", b"%C0%80", b"%FF", b"%%", b"%E2%82", b"%0D%0A")
RANDOM_COMMANDS = ("VER", "INF", "USR", "XFR", "SYN", "CHG", "ADD", "REM", "REA", "BLP", "GTC", "PRP", "URL",
                   "PNG", "QRY", "CHL", "PAG", "SND", "SDC", "FND", "LST", "OUT", "MSG", "RNG", "CAL", "ANS",
                   "IRO", "JOI", "BYE", "CVR", "ADG", "RMG", "REG", "LSG", "NLN", "ILN", "FLN", "BPR", "IPG",
                   "NOT", "QNG", "usr", "Ver", "XYZ", "", "A", "ABCD", "\u0645\u0631\u062d")


def random_word(rng: random.Random, corpus: list[str]) -> str:
    pick = rng.random()
    if pick < 0.3:
        return rng.choice(corpus)
    if pick < 0.5:
        return rng.choice(("FL", "AL", "BL", "RL", "XL", "NLN", "HDN", "BSY", "FLN", "MD5", "I", "S", "SB", "NS",
                           "OK", "A", "N", "U", "CKI", "MSMSGS", "@@a", "a@", "@", "x" * 130 + "@x.com"))
    if pick < 0.75:
        return rng.choice(ODD_NUMBERS) if rng.random() < 0.5 else str(rng.randint(-5, 10**12))
    return "".join(rng.choice("abcXYZ019%@.-_~") for _ in range(rng.randint(1, 12)))


def random_step(rng: random.Random, corpus: list[str], conn: str) -> Step:
    command = rng.choice(RANDOM_COMMANDS)
    words = [command, *(random_word(rng, corpus) for _ in range(rng.randint(0, 6)))]
    payload = None
    if rng.random() < 0.3:
        payload = bytes(rng.randrange(256) for _ in range(rng.randint(0, 64)))
        words.append(str(len(payload)))
    text = " ".join(words)
    return Step(conn, lambda ctx, t: (text, payload), expect="none", mutations=["random"])


def _split_line(data: bytes) -> tuple[bytes, bytes]:
    """(line without CRLF, the rest: CRLF and payload)."""
    end = data.find(b"\r\n")
    return (data, b"") if end < 0 else (data[:end], data[end:])


def mutate_bytes(rng: random.Random, kind: str, data: bytes) -> bytes:
    head, rest = _split_line(data)
    if kind == "flip":
        buf = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            if buf:
                buf[rng.randrange(len(buf))] ^= rng.randint(1, 255)
        return bytes(buf)
    if kind == "truncate":
        return data[:rng.randrange(max(1, len(data)))] + (b"\r\n" if rng.random() < 0.5 else b"")
    if kind == "args":
        words = head.split(b" ")
        if len(words) > 1 and rng.random() < 0.5:
            for _ in range(rng.randint(1, min(3, len(words) - 1))):
                words.pop(rng.randrange(1, len(words)))
        else:
            for _ in range(rng.randint(1, 5)):
                words.insert(rng.randint(1, len(words)), rng.choice((b"x", b"0", b"FL", b"a@b.c", b"", b"1")))
        return b" ".join(words) + rest
    if kind == "number":
        words = head.split(b" ")
        numeric = [i for i, w in enumerate(words) if w.isdigit()] or [len(words) - 1]
        i = rng.choice(numeric)
        words[i] = rng.choice(ODD_NUMBERS).encode("utf-8")
        return b" ".join(words) + rest
    if kind == "control":
        buf = bytearray(head)
        for _ in range(rng.randint(1, 3)):
            buf[rng.randint(0, len(buf)):0] = rng.choice(CONTROL)
        return bytes(buf) + rest
    if kind == "long":
        size = rng.choice((4095, 4096, 4097, 8192, rng.randint(5000, 70000)))
        filler = rng.choice((b"A", b"%41", b" ", b"\xff", b"9"))
        at = rng.randint(0, len(head))
        return head[:at] + (filler * size)[:size] + head[at:] + rest
    if kind == "length":
        words = head.split(b" ")
        payload = rest[2:]
        if words[-1].isdigit():
            declared = int(words[-1])
            words[-1] = str(rng.choice((declared + rng.randint(1, 50), max(0, declared - rng.randint(1, 50)),
                                        0, 1664, 1665, 8192, 8193, 10**9))).encode()
        else:
            payload = bytes(rng.randrange(256) for _ in range(rng.randint(1, 40)))
            words.append(str(len(payload) + rng.choice((-5, 0, 7))).encode())
        return b" ".join(words) + b"\r\n" + payload
    if kind == "utf8":
        words = head.split(b" ")
        i = rng.randrange(len(words))
        word = words[i]
        at = rng.randint(0, len(word))
        words[i] = word[:at] + rng.choice(BAD_BYTES) + word[at:]
        return b" ".join(words) + rest
    raise ValueError(kind)


BYTE_MUTATIONS = ("flip", "truncate", "args", "number", "control", "long", "length", "utf8")


def plan_session(rng: random.Random, kind: str, corpus: list[str], allowed: list[str]) -> tuple[list[Step], set[str]]:
    """The session's steps with their mutations; and the session-wide ones ("split")."""
    maker = {"ds": ds_transcript, "ns": ns_transcript, "sb": sb_transcript}[kind]
    steps = maker(rng, corpus)
    session_wide: set[str] = set()
    count = 0 if rng.random() < 0.08 or not allowed else rng.choice((1, 1, 2, 2, 3))
    for mutation in (rng.choice(allowed) for _ in range(count)):
        if mutation == "split":
            session_wide.add("split")
        elif mutation == "dup":
            i = rng.randrange(len(steps))
            steps.insert(i + 1, attrs.evolve(steps[i], mutations=[*steps[i].mutations, "dup"]))
        elif mutation == "reorder" and len(steps) > 1:
            i, j = rng.sample(range(len(steps)), 2)
            steps[i], steps[j] = steps[j], steps[i]
            steps[i].mutations.append("reorder")
        elif mutation == "drop" and len(steps) > 1:
            steps.pop(rng.randrange(len(steps)))
            session_wide.add("drop")
        elif mutation == "random":
            i = rng.randint(0, len(steps))
            steps.insert(i, random_step(rng, corpus, steps[min(i, len(steps) - 1)].conn))
        else:  # a byte mutation or "close", on one step
            steps[rng.randrange(len(steps))].mutations.append(mutation)
    return steps, session_wide


# -- one fuzz session ----------------------------------------------------------------------------


@attrs.define
class Target:
    host: str
    ds: int
    ns: int
    sb: int


@attrs.define
class SessionResult:
    index: int
    kind: str
    mutations: list[str]
    record: list[tuple[str, bytes]]
    lines_sent: int = 0
    codes: Counter[str] = attrs.field(factory=Counter)
    error: str = ""
    source: str = ""


def session_rng(seed: int, index: int) -> random.Random:
    return random.Random(f"{seed}:{index}")


def source_address(rng: random.Random) -> str:
    """A loopback source address of its own (127.1.0.0 and up: 127.0.0.x is the canary's)."""
    return f"127.{rng.randint(1, 254)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


async def run_session(target: Target, seed: int, index: int, fuzz_accounts: int, allowed: list[str]) -> SessionResult:
    rng = session_rng(seed, index)
    corpus = [fuzz_handle(i) for i in range(fuzz_accounts)] + [f"nobody{i}@{DOMAIN}" for i in range(3)]
    kind = rng.choice(KINDS)
    me, peer = rng.sample(range(fuzz_accounts), 2)
    ctx = Context(fuzz_handle(me), PASSWORD, fuzz_handle(peer))
    steps, session_wide = plan_session(rng, kind, corpus, allowed)
    result = SessionResult(index, kind, sorted(session_wide | {m for s in steps for m in s.mutations}), [])
    source = result.source = source_address(rng)
    conns: dict[str, Conn] = {}
    try:
        await asyncio.wait_for(_play(target, rng, ctx, kind, steps, session_wide, source, conns, result),
                               SESSION_DEADLINE)
    except (TimeoutError, Closed):
        pass
    except (OSError, RuntimeError) as e:  # a refused helper login (a locked account), a reset
        result.error = f"{type(e).__name__}: {e}"
    finally:
        for conn in conns.values():
            await conn.close()
    for direction, data in result.record:
        if direction.endswith("<"):
            words = data.split(b" ", 1)[0].strip()
            if len(words) == 3 and words.isdigit():
                result.codes[words.decode()] += 1
    return result


async def _play(target: Target, rng: random.Random, ctx: Context, kind: str, steps: list[Step],
                session_wide: set[str], source: str, conns: dict[str, Conn], result: SessionResult) -> None:
    record = result.record
    if kind == "sb":
        # The two users log in unmutated; the switchboard part is what is fuzzed.
        ns_a = conns["ns"] = await Conn.open(target.host, target.ns, source, record, "ns-a", auto_challenge=True)
        ns_b = conns["ns-b"] = await Conn.open(target.host, target.ns, source, record, "ns-b", auto_challenge=True)
        for conn, handle in ((ns_a, ctx.handle), (ns_b, ctx.peer)):
            await login(conn, handle, ctx.password)
            conn.send(f"CHG {conn.next_trid()} NLN")
        t = ns_a.next_trid()
        ns_a.send(f"XFR {t} SB")
        xfr = (await ns_a.expect(lambda line: line.split(" ")[1:2] == [str(t)], 5)).split(" ")
        if xfr[:3] == ["XFR", str(t), "SB"] and len(xfr) == 6:
            ctx.sb_port = int(xfr[3].rpartition(":")[2])
            ctx.cookie = xfr[5]
    for step in steps:
        if step.conn not in conns:
            port = {"ds": target.ds, "ns": target.ns}.get(step.conn, ctx.sb_port or target.sb)
            conns[step.conn] = await Conn.open(target.host, port, source, record, step.conn)
        conn = conns[step.conn]
        if conn.closed:
            continue
        if step.wait_challenge and not ctx.challenge:
            await _watch(conn, ctx, lambda line: line.startswith("CHL "), 1.5)
        if step.wait_ring and not ctx.ring:
            await _watch(conns["ns-b"], ctx, lambda line: line.startswith("RNG "), 2.0)
        t = conn.next_trid()
        text, payload = step.build(ctx, t)
        data = text.encode("utf-8") + b"\r\n" + (payload or b"")
        for mutation in step.mutations:
            if mutation in BYTE_MUTATIONS:
                data = mutate_bytes(rng, mutation, data)
        if "close" in step.mutations:
            await _write(conn, data[:rng.randint(0, len(data))], rng, "split" in session_wide)
            conn.abort()
            return
        await _write(conn, data, rng, "split" in session_wide)
        result.lines_sent += 1
        mutated = bool(step.mutations)
        expect = step.expect
        await _watch(conn, ctx, _answer_of(t, expect, mutated), 0.05 if expect == "none" and not mutated else STEP_TIMEOUT)


def _answer_of(t: int, expect: str, mutated: bool) -> Callable[[str], bool]:
    """What ends the wait after a step: for a mutated one any line (its TrID may be gone)."""
    if mutated:
        return lambda line: True
    if expect == "QNG":
        return lambda line: line == "QNG"
    return lambda line: line.split(" ")[1:2] == [str(t)]


async def _write(conn: Conn, data: bytes, rng: random.Random, split: bool) -> None:
    if not split or len(data) < 2:
        conn.write(data)
        await conn.writer.drain()
        return
    cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(1, 4))))
    for start, end in zip([0, *cuts], [*cuts, len(data)], strict=True):
        conn.write(data[start:end])
        await conn.writer.drain()
        await asyncio.sleep(rng.choice((0, 0, 0.002, 0.01)))


async def _watch(conn: Conn, ctx: Context, done: Callable[[str], bool], timeout: float) -> None:
    """Read until ``done`` (or the timeout), learning salts, cookies, rings and challenges."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        try:
            text, _ = await conn.recv(left)
        except (TimeoutError, Closed):
            return
        words = text.split(" ")
        if words[0] == "USR" and words[2:4] == ["MD5", "S"] and len(words) == 5:
            ctx.salt = words[4]
        elif words[0] == "XFR" and words[2:3] == ["SB"] and len(words) == 6:
            ctx.sb_port, ctx.cookie = int(words[3].rpartition(":")[2] or 0), words[5]
        elif words[0] == "RNG" and len(words) >= 5:
            ctx.ring = [words[1], words[4]]
        elif words[0] == "CHL" and len(words) == 3:
            ctx.challenge = words[2]
        if done(text):
            return


# -- the server log ------------------------------------------------------------------------------

_NUMBERS = re.compile(r"0x[0-9a-f]+|\d+")
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_ENTRY = re.compile(r"\d{4}-\d\d-\d\dT")
_CONN = re.compile(r"conn (\d+) \w+ ([0-9a-f.:]+):\d+")
_CONN_ID = re.compile(r"conn (\d+)")
_RAW = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@attrs.define
class LogAlarm:
    signature: str
    text: str
    conn: str | None


class LogWatch:
    """Reads what the server log gained since the last look and reports alarming entries; also
    learns which connection id had which peer address (to tell which session caused an alarm)
    and counts lines with raw control bytes (client bytes that were not escaped)."""

    def __init__(self, path: Path, from_start: bool = False) -> None:
        self.path = path
        self.inode = path.stat().st_ino if path.exists() else None
        self.offset = 0 if from_start or not path.exists() else path.stat().st_size
        self.peers: dict[str, str] = {}
        self.raw_lines: list[str] = []
        self.raw_count = 0

    def scan(self) -> list[LogAlarm]:
        if not self.path.exists():
            return []
        inode = self.path.stat().st_ino
        data = b""
        if inode != self.inode:
            # twistd rotated the log (at 1 MB): finish the old file (now PATH.1), then the new one.
            rotated = self.path.with_name(self.path.name + ".1")
            if self.inode is not None and rotated.exists() and rotated.stat().st_ino == self.inode:
                data = self._read(rotated)
            self.inode, self.offset = inode, 0
        data += self._read(self.path)
        complete = data.rfind(b"\n") + 1  # a partial last line waits for the next look
        self.offset -= len(data) - complete
        text = data[:complete].decode("utf-8", "backslashreplace")
        self.peers.update(_CONN.findall(text))
        for raw in text.splitlines():
            if _RAW.search(raw.lstrip("\t")):
                self.raw_count += 1
                if len(self.raw_lines) < 5:
                    self.raw_lines.append(repr(raw[:300]))
        return alarms(text)

    def _read(self, path: Path) -> bytes:
        with open(path, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        self.offset += len(data)
        return data


def entries(text: str) -> list[str]:
    """Log entries: a timestamped line and its tab-indented continuation lines."""
    found: list[str] = []
    for raw in text.splitlines():
        if _ENTRY.match(raw) or not found:
            found.append(raw)
        else:
            found[-1] += "\n" + raw
    return found


def alarms(text: str) -> list[LogAlarm]:
    """The entries that contain an alarm; each with a signature that ignores connection ids,
    line numbers and the client's values (the same bug gives the same signature)."""
    found = []
    for entry in entries(text):
        if not any(alarm in entry for alarm in LOG_ALARMS):
            continue
        lines = entry.splitlines()
        message = _NUMBERS.sub("N", lines[0].split("] ", 1)[-1])
        frames = [b.strip() for b in lines if b.strip().startswith("File ") and "site-packages" not in b]
        where = re.sub(r", line \d+", "", frames[-1]) if frames else ""
        last = next((b.strip() for b in reversed(lines[1:]) if b.strip() and not b.startswith("\t  ")), "")
        signature = f"{message} | {where} | {_QUOTED.sub('…', last)}"[:400]
        conn = _CONN_ID.search(lines[0])
        found.append(LogAlarm(signature, entry, conn.group(1) if conn else None))
    return found


# -- the canary ----------------------------------------------------------------------------------

#: The canary's lists: FL/AL/BL as seeded, RL from those who have it on their FL.
CANARY_LISTS = {("FL", WATCHER), ("FL", FRIEND), ("FL", fuzz_handle(0)), ("AL", WATCHER), ("AL", FRIEND),
                ("BL", fuzz_handle(1)), ("RL", WATCHER), ("RL", FRIEND), ("RL", fuzz_handle(2))}
CANARY_SETTINGS = {"GTC": "A", "BLP": "AL"}


def seed_accounts(db_url: str, key_file: Path, fuzz_accounts: int) -> None:
    """The fuzz accounts, the canary, its watcher, friend and the probe, with the canary's
    lists; accounts that exist already are kept (a running target's database)."""
    engine = open_database(db_url)
    try:
        store = StoreCore(engine)
        key = CredentialKey.load(key_file, create=True)
        handles = [CANARY, WATCHER, FRIEND, PROBE, *(fuzz_handle(i) for i in range(fuzz_accounts))]
        fresh = set()
        for handle in handles:
            if store.get_account(handle) is None:
                store.create_account(handle, handle.split("@")[0], key.seal(handle, PASSWORD))
                fresh.add(handle)
        if CANARY not in fresh:
            return
        ids = {h: store.get_account(h).id for h in handles}  # type: ignore[union-attr]
        for owner, list_name, contact in ((CANARY, "FL", WATCHER), (CANARY, "FL", FRIEND),
                                          (CANARY, "FL", fuzz_handle(0)), (CANARY, "AL", WATCHER),
                                          (CANARY, "AL", FRIEND), (CANARY, "BL", fuzz_handle(1)),
                                          (WATCHER, "FL", CANARY), (FRIEND, "FL", CANARY),
                                          (fuzz_handle(2), "FL", CANARY)):
            store.add_entry(ids[owner], owner.split("@")[0], list_name, contact, contact.split("@")[0], 1000)
    finally:
        engine.dispose()


class Canary:
    """The canary logged in for the whole run (NLN, known lists) and a watcher that sees it."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.record: list[tuple[str, bytes]] = []
        self.canary: Conn | None = None
        self.watcher: Conn | None = None

    async def start(self) -> None:
        self.canary = await Conn.open(self.target.host, self.target.ns, "127.0.0.1", self.record, "canary",
                                      auto_challenge=True)
        await login(self.canary, CANARY, PASSWORD)
        settings, entries = await sync_lists(self.canary)
        self._compare("at the start", settings, entries)
        self.canary.send(f"CHG {self.canary.next_trid()} NLN")
        self.watcher = await Conn.open(self.target.host, self.target.ns, "127.0.0.1", self.record, "watcher",
                                       auto_challenge=True)
        await login(self.watcher, WATCHER, PASSWORD)
        await sync_lists(self.watcher)
        self.watcher.send(f"CHG {self.watcher.next_trid()} NLN")
        await self.watcher.expect(lambda line: line.startswith("ILN ") and f" NLN {CANARY} " in line, 10)

    async def check(self) -> None:
        """PNG->QNG on the canary; the watcher sees it go AWY and back to NLN."""
        assert self.canary is not None and self.watcher is not None
        self.canary.send("PNG")
        await self.canary.expect(lambda line: line == "QNG", 10)
        for status in ("AWY", "NLN"):
            self.canary.send(f"CHG {self.canary.next_trid()} {status}")
            await self.watcher.expect(starts(f"NLN {status} {CANARY} "), 10)

    async def finish(self) -> None:
        """The live session is still fine; then a fresh login's SYN 0 gives the seeded lists."""
        await self.check()
        assert self.canary is not None and self.watcher is not None
        self.canary.send("OUT")
        await self.watcher.expect(starts(f"FLN {CANARY}"), 10)
        fresh = await Conn.open(self.target.host, self.target.ns, "127.0.0.1", self.record, "canary-again",
                               auto_challenge=True)
        try:
            await login(fresh, CANARY, PASSWORD)
            settings, entries = await sync_lists(fresh)
            self._compare("at the end", settings, entries)
        finally:
            await fresh.close()

    def _compare(self, when: str, settings: dict[str, str], entries: set[tuple[str, str]]) -> None:
        if entries != CANARY_LISTS or settings != CANARY_SETTINGS:
            raise CanaryDifference(
                f"canary lists {when}: missing {sorted(CANARY_LISTS - entries)}, extra {sorted(entries - CANARY_LISTS)}, "
                f"settings {settings} (expected {CANARY_SETTINGS})")

    async def close(self) -> None:
        for conn in (self.canary, self.watcher):
            if conn is not None:
                await conn.close()


class CanaryDifference(Exception):
    pass


async def probe(target: Target) -> None:
    """A fresh login (and PNG) of an account nobody else uses: is the server still answering?"""
    record: list[tuple[str, bytes]] = []
    conn = await Conn.open(target.host, target.ns, "127.0.0.1", record, "probe")
    try:
        await login(conn, PROBE, PASSWORD)
        conn.send("PNG")
        await conn.expect(lambda line: line == "QNG", 10)
    finally:
        await conn.close()


# -- the run -------------------------------------------------------------------------------------


@attrs.define
class Finding:
    kind: str  # "traceback", "500", "canary", "unresponsive", "server died"
    signature: str
    detail: str
    sessions: list[int] = attrs.field(factory=list)
    count: int = 1
    reproducer: int | None = None
    conns: list[str] = attrs.field(factory=list)
    confirmed: bool = False


@attrs.define
class Run:
    args: argparse.Namespace
    target: Target
    log: LogWatch | None
    server: ServerProcess | None
    out: Path
    findings: dict[str, Finding] = attrs.field(factory=dict)
    results: dict[int, SessionResult] = attrs.field(factory=dict)
    active: set[int] = attrs.field(factory=set)
    recent: list[int] = attrs.field(factory=list)
    #: Each session's source address -> its index (a log line's peer names the session).
    sources: dict[str, int] = attrs.field(factory=dict)
    done: int = 0
    kinds: Counter[str] = attrs.field(factory=Counter)
    mutations: Counter[str] = attrs.field(factory=Counter)
    codes: Counter[str] = attrs.field(factory=Counter)
    lines_sent: int = 0
    elapsed: float = 0.0
    #: Periodic checks passed (canary PNG/presence, fresh probe logins), and the final canary SYN.
    canary_checks: int = 0
    probes: int = 0
    canary_final: str = "not run"

    def add(self, kind: str, signature: str, detail: str, sessions: Iterable[int] = ()) -> Finding:
        key = f"{kind}: {signature}"
        finding = self.findings.get(key)
        if finding is None:
            finding = self.findings[key] = Finding(kind, signature, detail, sorted(sessions)[:50])
            print(f"FINDING {key}", flush=True)
        else:
            finding.count += 1
        return finding

    def scan_log(self) -> None:
        if self.log is None:
            return
        suspects = sorted(self.active | set(self.recent))
        for alarm in self.log.scan():
            finding = self.add("traceback", alarm.signature, alarm.text, suspects)
            if alarm.conn is not None and len(finding.conns) < 20:
                finding.conns.append(alarm.conn)

    def keep(self, result: SessionResult) -> None:
        self.done += 1
        self.kinds[result.kind] += 1
        self.mutations.update(result.mutations)
        self.codes.update(result.codes)
        self.lines_sent += result.lines_sent
        if "500" in result.codes:
            command = _command_before_500(result.record)
            finding = self.add("500", f"500 answer to {command}", "", [result.index])
            if finding.reproducer is None:
                finding.reproducer = result.index
        self.results[result.index] = result
        self.sources[result.source] = result.index
        self.recent = [*self.recent[-(2 * self.args.concurrency):], result.index]
        # Keep the transcripts that a log alarm may still point at, drop the rest.
        keep = self.active | set(self.recent) | {i for f in self.findings.values() for i in f.sessions}
        if len(self.results) > 4 * self.args.concurrency + 200:
            self.results = {i: r for i, r in self.results.items() if i in keep}


def _command_before_500(record: list[tuple[str, bytes]]) -> str:
    """The command a 500 answered: the last complete line sent on that connection before it."""
    sent: dict[str, bytes] = {}
    for direction, data in record:
        name = direction[:-1]
        if direction.endswith(">"):
            sent[name] = sent.get(name, b"") + data
        elif data.startswith(b"500 "):
            lines = [line.split(b" ") for line in sent.get(name, b"").split(b"\n")[:-1]]
            trid = data[4:].strip()
            # The line with the 500's TrID (later lines may have gone out before the answer came).
            words = next((w for w in reversed(lines) if w[1:2] == [trid]), lines[-1] if lines else [b"?"])
            return f"{name} {words[0][:12].decode('utf-8', 'backslashreplace')}"
    return "?"


def transcript_text(record: list[tuple[str, bytes]]) -> str:
    """``conn> bytes`` (sent) and ``conn< bytes`` (received), every byte visible."""
    return "\n".join(f"{direction} {data!r}" for direction, data in record)


async def fuzz(run: Run) -> None:
    args = run.args
    allowed = [m for m in MUTATIONS if m not in args.skip]
    started = time.monotonic()
    indexes = iter([args.session_index] if args.session_index is not None else range(args.sessions))
    canary = Canary(run.target)
    try:
        await canary.start()
    except Exception as e:  # the server is not usable at all
        run.add("canary", "canary could not log in", f"{type(e).__name__}: {e}\n{transcript_text(canary.record)}")
        return
    print(f"fuzzing started: log {run.log.path if run.log else '-'}, output {run.out}", flush=True)
    stop = asyncio.Event()

    async def worker() -> None:
        for index in indexes:
            if stop.is_set() or time.monotonic() - started > args.max_seconds:
                return
            run.active.add(index)
            result = await run_session(run.target, args.seed, index, args.accounts, allowed)
            run.active.discard(index)
            run.keep(result)

    async def checker() -> None:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), args.check_interval)
            except TimeoutError:
                pass
            run.scan_log()
            if run.server is not None and run.server.proc is not None and run.server.proc.poll() is not None:
                run.add("server died", f"exit code {run.server.proc.returncode}", run.server.output()[-4000:],
                        sorted(run.active | set(run.recent)))
                stop.set()
                return
            try:
                await asyncio.wait_for(probe(run.target), 15)
                run.probes += 1
            except Exception as e:
                run.add("unresponsive", "a fresh login failed", f"{type(e).__name__}: {e}", sorted(run.active))
            try:
                await asyncio.wait_for(canary.check(), 20)
                run.canary_checks += 1
            except Exception as e:
                run.add("canary", "canary check failed", f"{type(e).__name__}: {e}\n{transcript_text(canary.record[-40:])}")
                stop.set()

    check_task = asyncio.ensure_future(checker())
    await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    stop.set()
    await check_task
    run.elapsed = time.monotonic() - started
    await asyncio.sleep(0.5)  # the server's last log lines
    run.scan_log()
    if not any(f.kind == "canary" for f in run.findings.values()):
        try:
            await asyncio.wait_for(canary.finish(), 40)
            run.canary_final = "intact"
        except CanaryDifference as e:
            run.add("canary", "canary lists changed", str(e))
        except Exception as e:
            run.add("canary", "canary final check failed", f"{type(e).__name__}: {e}\n{transcript_text(canary.record[-40:])}")
    await canary.close()
    try:
        await asyncio.wait_for(probe(run.target), 15)
    except Exception as e:
        run.add("unresponsive", "a fresh login failed at the end", f"{type(e).__name__}: {e}")
    run.scan_log()


async def triage(run: Run) -> None:
    """Name the session behind each log alarm (its connection's peer address in the log, else
    the sessions running at the time) and replay it alone: its transcript is the reproducer."""
    if run.log is None:
        return
    allowed = [m for m in MUTATIONS if m not in run.args.skip]
    deadline = time.monotonic() + run.args.triage_seconds
    for finding in list(run.findings.values()):
        if finding.kind != "traceback":
            continue
        named = [run.sources[run.log.peers[c]] for c in finding.conns
                 if c in run.log.peers and run.log.peers[c] in run.sources]
        failed = re.match(r"conn N (\w+): (\S+) failed", finding.signature)
        answered = run.findings.get(f"500: 500 answer to {failed.group(1)} {failed.group(2)}") if failed else None
        if answered is not None and answered.reproducer is not None:
            named.insert(0, answered.reproducer)  # the session that got the 500 this failure answered
        for index in dict.fromkeys([*named[:3], *finding.sessions[:10]]):
            if time.monotonic() > deadline:
                return
            result = await run_session(run.target, run.args.seed, index, run.args.accounts, allowed)
            await asyncio.sleep(0.3)
            if any(a.signature == finding.signature for a in run.log.scan()):
                finding.reproducer, finding.confirmed = index, True
                run.results[index] = result
                break
            if index in named and finding.reproducer is None:
                finding.reproducer = index  # named by the log, though one replay did not repeat it
                run.results[index] = result


def loopback(host: str) -> bool:
    try:
        return all(ipaddress.ip_address(info[4][0]).is_loopback
                   for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP))
    except (OSError, ValueError):
        return False


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="Exit status: 0 clean run, 1 findings, 2 usage error.")
    parser.add_argument("--sessions", type=int, default=1000, help="fuzz sessions to run (default 1000)")
    parser.add_argument("--max-seconds", type=float, default=300, help="stop starting sessions after this (default 300)")
    parser.add_argument("--seed", type=int, default=1, help="master seed: session i is random.Random(f'{seed}:{i}')")
    parser.add_argument("--concurrency", type=int, default=32, help="sessions at a time (default 32)")
    parser.add_argument("--session-index", type=int, help="run only this session of the seed (to reproduce one)")
    parser.add_argument("--skip", action="append", default=[], choices=MUTATIONS, metavar="MUTATION",
                        help=f"leave a mutation class out (repeatable): {', '.join(MUTATIONS)}")
    parser.add_argument("--accounts", type=int, default=200, help="fuzz accounts (default 200)")
    parser.add_argument("--check-interval", type=float, default=2.0, help="seconds between canary/probe/log checks")
    parser.add_argument("--triage-seconds", type=float, default=60,
                        help="time for replaying the sessions behind log alarms (default 60)")
    parser.add_argument("--out", type=Path, help="output directory (default: a new temporary one)")
    own = parser.add_argument_group("own server (default)")
    own.add_argument("--server-arg", action="append", default=[], metavar="ARG",
                     help="an extra `twistd msnp6` option for the server started here (repeatable)")
    target = parser.add_argument_group("a running server instead")
    target.add_argument("--target", metavar="HOST", help="attack a running server on this loopback host")
    target.add_argument("--ds", type=int, default=1863)
    target.add_argument("--ns", type=int, default=1864)
    target.add_argument("--sb", type=int, default=1865)
    target.add_argument("--server-log", type=Path, help="the running server's log file to scan")
    target.add_argument("--db", help="the running server's database URL (the accounts are seeded there)")
    target.add_argument("--key-file", type=Path, help="the running server's credential key file")
    args = parser.parse_args(argv)
    if args.target is not None:
        if not loopback(args.target):
            parser.error(f"--target {args.target} is not a loopback address: this tool only attacks 127.0.0.0/8 or ::1")
        if args.db is None or args.key_file is None:
            parser.error("--target needs --db and --key-file (to seed the fuzz and canary accounts)")
    if args.accounts < 3 or args.concurrency < 1 or args.sessions < 0:
        parser.error("--accounts must be at least 3, --concurrency at least 1")
    return args


def write_report(run: Run) -> dict[str, Any]:
    elapsed = run.elapsed
    findings = []
    for n, finding in enumerate(run.findings.values(), 1):
        index = finding.reproducer
        transcript = transcript_text(run.results[index].record) if index in run.results else ""
        name = f"finding-{n}.txt"
        (run.out / name).write_text(
            f"{finding.kind}: {finding.signature}\nseen {finding.count} time(s)\n"
            + (f"reproduce: python tools/fuzz.py --seed {run.args.seed} --session-index {index}\n" if index is not None else "")
            + f"reproduced alone by a replay: {finding.confirmed}\nsuspect sessions: {finding.sessions}\n\n"
            + f"{finding.detail}\n\n--- transcript of session {index} ---\n{transcript}\n")
        findings.append({"kind": finding.kind, "signature": finding.signature, "count": finding.count,
                         "reproducer": index, "replayed": finding.confirmed, "file": name})
    summary = {
        "sessions": run.done, "by_kind": dict(run.kinds), "lines_sent": run.lines_sent,
        "mutations": dict(run.mutations.most_common()), "answers_by_error_code": dict(sorted(run.codes.items())),
        "seconds": round(elapsed, 1), "sessions_per_second": round(run.done / elapsed, 1) if elapsed else 0,
        "seed": run.args.seed, "findings": findings,
        "canary_checks_passed": run.canary_checks, "probe_logins": run.probes, "canary_at_the_end": run.canary_final,
        "log_lines_with_raw_control_bytes": run.log.raw_count if run.log else 0,
        "log_raw_examples": run.log.raw_lines if run.log else [],
    }
    (run.out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def print_summary(summary: dict[str, Any], out: Path) -> None:
    print(f"sessions: {summary['sessions']} {summary['by_kind']} in {summary['seconds']} s "
          f"({summary['sessions_per_second']}/s), lines sent: {summary['lines_sent']}, seed {summary['seed']}")
    print(f"mutations: {summary['mutations']}")
    print(f"server answers by error code: {summary['answers_by_error_code']}")
    print(f"canary checks passed: {summary['canary_checks_passed']}, probe logins: {summary['probe_logins']}, "
          f"canary lists at the end: {summary['canary_at_the_end']}")
    print(f"findings: {len(summary['findings'])}")
    for f in summary["findings"]:
        print(f"  [{f['kind']}] x{f['count']} {f['signature']}\n      session {f['reproducer']}"
              f"{' (replayed alone: yes)' if f['replayed'] else ''}, {out / f['file']}")
    print(f"output: {out}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="msnp6-fuzz-"))
    out.mkdir(parents=True, exist_ok=True)
    server: ServerProcess | None = None
    if args.target is None:
        db = f"sqlite:///{out / 'fuzz.sqlite3'}"
        key_file = out / "credential.key"
        seed_accounts(db, key_file, args.accounts)
        server = ServerProcess(db, key_file, out / "server", extra_args=args.server_arg)
        server.start()
        target = Target("127.0.0.1", server.ports["ds"], server.ports["ns"], server.ports["sb"])
        log: LogWatch | None = LogWatch(server.log_file, from_start=True)
    else:
        seed_accounts(args.db, args.key_file, args.accounts)
        target = Target(args.target, args.ds, args.ns, args.sb)
        log = LogWatch(args.server_log) if args.server_log else None
    run = Run(args, target, log, server, out)
    try:
        asyncio.run(_main(run))
    finally:
        if server is not None:
            code = server.stop()
            if code not in (0, None):
                run.add("server died", f"exit code {code} at shutdown", server.output()[-4000:])
        if log is not None:
            for alarm in log.scan():
                run.add("traceback", alarm.signature, alarm.text)
            if log.raw_count:
                # Client bytes reach log lines escaped (msnp6.wire.trace): a raw one is a finding.
                run.add("raw log bytes", f"{log.raw_count} server log lines hold raw control bytes",
                        "\n".join(log.raw_lines))
    summary = write_report(run)
    print_summary(summary, out)
    return 1 if summary["findings"] else 0


async def _main(run: Run) -> None:
    await fuzz(run)
    if run.findings:
        await triage(run)


if __name__ == "__main__":
    sys.exit(main())
