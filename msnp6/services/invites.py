"""Sign-up invite codes (``--signup invite``): made by ``msnp6-admin invite create``, handed out
by the operator, redeemed once by the web side's sign-up form. The database keeps only each
code's SHA-256: a copy of it lets nobody sign up."""
from __future__ import annotations

import hashlib
import secrets

#: Random bytes in a code: 16 give 22 URL-safe characters (128 bits, nothing to guess).
CODE_BYTES = 16
#: The longest code the form takes; anything longer cannot be one of ours.
MAX_CODE = 64


def new_code() -> str:
    return secrets.token_urlsafe(CODE_BYTES)


def code_hash(code: str) -> str:
    """What the database keeps of ``code`` (as typed: surrounding blanks do not count)."""
    return hashlib.sha256(code.strip().encode("utf-8")).hexdigest()
