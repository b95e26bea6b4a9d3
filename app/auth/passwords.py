"""Password hashing with argon2id (argon2-cffi); the cost comes from the settings."""

from __future__ import annotations

from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app


@lru_cache(maxsize=4)
def _hasher(time_cost: int, memory_kib: int) -> PasswordHasher:
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=1)


def _current() -> PasswordHasher:
    cfg = current_app.config
    return _hasher(cfg["PASSWORD_HASH_TIME_COST"], cfg["PASSWORD_HASH_MEMORY_KIB"])


def hash_password(password: str) -> str:
    return _current().hash(password)


# A real hash to verify against when the username is unknown, so timing does not tell.
_DUMMY: dict[str, str] = {}


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when the password matches; also spends the same time for an unknown user."""
    hasher = _current()
    if password_hash is None:
        key = f"{hasher.time_cost}:{hasher.memory_cost}"
        password_hash = _DUMMY.setdefault(key, hasher.hash("unknown-user"))
        password = password + "\0"
    try:
        return hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
