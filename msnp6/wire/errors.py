"""MSNP error codes and the exceptions handlers raise to produce them."""
from __future__ import annotations

import enum


class ErrorCode(enum.IntEnum):
    SYNTAX_ERROR = 200
    INVALID_PARAMETER = 201
    INVALID_USER = 205
    DOMAIN_NAME_MISSING = 206
    ALREADY_LOGGED_IN = 207
    INVALID_USERNAME = 208
    INVALID_FRIENDLY_NAME = 209
    LIST_FULL = 210
    ALREADY_THERE = 215
    NOT_ON_LIST = 216
    PRINCIPAL_NOT_ONLINE = 217
    ALREADY_IN_MODE = 218
    ALREADY_IN_OPPOSITE_LIST = 219
    TOO_MANY_GROUPS = 223
    INVALID_GROUP = 224
    NOT_IN_GROUP = 225
    GROUP_NAME_TOO_LONG = 229
    CANNOT_REMOVE_GROUP_0 = 230
    SWITCHBOARD_FAILED = 280
    NOTIFY_XFR_FAILED = 281
    REQUIRED_FIELD_MISSING = 300
    TOO_MANY_FND_RESULTS = 301
    NOT_LOGGED_IN = 302
    INTERNAL_SERVER_ERROR = 500
    DATABASE_SERVER_ERROR = 501
    COMMAND_DISABLED = 502
    CHALLENGE_FAILED = 540
    SERVER_BUSY = 600
    SERVER_UNAVAILABLE = 601
    BAD_CVR_PARAMETERS = 710
    CALLING_TOO_RAPIDLY = 713
    TOO_MANY_SESSIONS = 714
    NOT_EXPECTED = 715
    NOT_EXPECTED_CVR = 731
    CHANGING_TOO_RAPIDLY = 800
    AUTHENTICATION_FAILED = 911
    NOT_ALLOWED_WHEN_OFFLINE = 913
    SERVER_UNAVAILABLE_915 = 915
    SERVER_UNAVAILABLE_916 = 916
    NOT_ACCEPTING_NEW_USERS = 920


class ProtocolError(Exception):
    """A request failed: answer ``<code> <trid>``; close afterwards when ``close``."""

    def __init__(self, code: ErrorCode | int, close: bool = False) -> None:
        super().__init__(int(code))
        self.code = int(code)
        self.close = close


class Disconnect(Exception):
    """The reference says to drop the connection without an answer."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class FramingError(Exception):
    """The byte stream cannot be framed (line or payload too long, bad length)."""
