"""API keys: create one (its token is shown once), list, revoke, and find the key of a token.

A token is 256 random bits (``rv_`` + 43 url-safe characters). The database keeps only its
sha256: a token that random needs no slow hash, since nobody can guess one to test against
the hash. A token is found by its hash through a unique index, so the lookup's time says
nothing about how much of a guess was right; ``hmac.compare_digest`` checks the row it found.

Scopes are ordered: ``read`` queries and subscribes, ``write`` also records runs, ``admin``
also deletes runs and manages keys.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from backend.database import tables
from backend.database.types import utcnow
from backend.errors import InputError

SCOPES = ("read", "write", "admin")
TOKEN_PREFIX = "rv_"
MAX_NAME_LENGTH = 200


def covers(scope: str, needed: str) -> bool:
    """Whether a key of ``scope`` may do what needs ``needed``."""
    return SCOPES.index(scope) >= SCOPES.index(needed)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


async def create_api_key(conn: AsyncConnection, name: str, scope: str) -> tuple[Any, str]:
    """A new key named ``name`` with ``scope``: its row (without the hash) and its token.

    Raises:
        InputError: an unknown scope, an empty or overlong name, or a name a live key has.
    """
    if scope not in SCOPES:
        raise InputError(f"Unknown scope {scope!r}: expected one of {', '.join(SCOPES)}.")
    if not name.strip() or len(name) > MAX_NAME_LENGTH or not name.isprintable():
        raise InputError(
            f"Key name {name!r} is not usable: expected 1 to {MAX_NAME_LENGTH} printable"
            " characters."
        )
    if await _live_by_name(conn, name) is not None:
        raise InputError(f"A key named {name!r} exists already: revoke it first, or pick another.")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    key_id = uuid.uuid4()
    await conn.execute(
        sa.insert(tables.api_key).values(
            id=key_id, name=name, scope=scope, created=utcnow(), token_hash=token_hash(token)
        )
    )
    return (await list_api_keys(conn, ids=[key_id]))[0], token


async def list_api_keys(
    conn: AsyncConnection, *, ids: Sequence[uuid.UUID] | None = None
) -> Sequence[Any]:
    """Every key (revoked ones too), oldest first; never their hashes."""
    key = tables.api_key.c
    query = sa.select(key.id, key.name, key.scope, key.created, key.revoked).order_by(
        key.created, key.id
    )
    if ids is not None:
        query = query.where(key.id.in_(ids))
    return (await conn.execute(query)).all()


async def revoke_api_key(conn: AsyncConnection, name_or_id: str) -> Any:
    """Revoke the live key named ``name_or_id``, or the key with that id.

    Raises:
        InputError: no live key has that name, and no key that id.
    """
    key = tables.api_key.c
    row = await _live_by_name(conn, name_or_id)
    if row is None:
        try:
            key_id = uuid.UUID(name_or_id)
        except ValueError:
            key_id = None
        if key_id is not None:
            found = await list_api_keys(conn, ids=[key_id])
            row = found[0] if found else None
    if row is None:
        raise InputError(
            f"No key is named {name_or_id!r} or has that id: see `runview api-key ls`."
        )
    if row.revoked is None:
        await conn.execute(
            sa.update(tables.api_key).where(key.id == row.id).values(revoked=utcnow())
        )
    return (await list_api_keys(conn, ids=[row.id]))[0]


async def read_api_key_by_token(conn: AsyncConnection, token: str) -> Any | None:
    """The live key whose token is ``token``, or ``None``."""
    digest = token_hash(token)
    key = tables.api_key.c
    row = (
        await conn.execute(
            sa.select(key.id, key.name, key.scope, key.token_hash).where(
                key.token_hash == digest, key.revoked.is_(None)
            )
        )
    ).one_or_none()
    if row is None or not hmac.compare_digest(row.token_hash, digest):
        return None
    return row


async def _live_by_name(conn: AsyncConnection, name: str) -> Any | None:
    key = tables.api_key.c
    found = (
        await conn.execute(
            sa.select(key.id, key.name, key.scope, key.created, key.revoked).where(
                key.name == name, key.revoked.is_(None)
            )
        )
    ).one_or_none()
    return found
