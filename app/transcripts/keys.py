"""Ed25519 signing keys for transcript credentials: stored, encrypted, rotated, published as a JWKS.

Keys live in the `signing_keys` table so they survive restarts and every app server signs with the
same one. The private half is PKCS#8 PEM encrypted (cryptography's BestAvailableEncryption) under a
password derived from SECRET_KEY by HMAC, so a copy of the database alone cannot sign. The key id
(`kid`) is the RFC 7638 thumbprint of the public JWK.

* The first key is created on first use (the first credential signed).
* `flask --app wsgi keys rotate` retires every current key for signing and adds a new one; retired
  keys stay in /.well-known/jwks.json, so credentials they signed keep verifying.
* Changing SECRET_KEY makes the stored private keys unreadable: run `keys rotate` afterwards (old
  credentials still verify, their public keys are stored in clear).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from flask import current_app
from sqlalchemy import select

from app.db import utcnow
from app.errors import APIError
from app.extensions import db
from app.transcripts.models import SigningKey

ALGORITHM = "EdDSA"

# Decrypting a PEM costs a few milliseconds: once per process and key is enough (keys never change).
_private_cache: dict[tuple[str, str], Ed25519PrivateKey] = {}
_public_cache: dict[str, Ed25519PublicKey] = {}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _password() -> bytes:
    secret = current_app.config["SECRET_KEY"].encode()
    return hmac.new(secret, b"transcript-signing-keys", hashlib.sha256).digest()


def public_jwk(public_key: Ed25519PublicKey) -> dict:
    """The public JWK of a key, with its kid (RFC 7638 thumbprint), alg and use."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    jwk = {"crv": "Ed25519", "kty": "OKP", "x": b64url(raw)}
    thumbprint = hashlib.sha256(json.dumps(jwk, sort_keys=True, separators=(",", ":")).encode()).digest()
    return {**jwk, "kid": b64url(thumbprint), "alg": ALGORITHM, "use": "sig"}


def create_key() -> SigningKey:
    """Generate a new signing key and add it (the caller commits)."""
    private = Ed25519PrivateKey.generate()
    jwk = public_jwk(private.public_key())
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(_password()),
    ).decode("ascii")
    row = SigningKey(kid=jwk["kid"], public_jwk=jwk, private_pem=pem, created_at=utcnow())
    db.session.add(row)
    db.session.flush()
    _private_cache[(row.kid, _secret_fingerprint())] = private
    return row


def rotate() -> tuple[SigningKey, list[str]]:
    """Retire every key still signing and add a new one; returns (new key, retired kids)."""
    now = utcnow()
    retired = []
    for row in db.session.scalars(select(SigningKey).where(SigningKey.retired_at.is_(None))):
        row.retired_at = now
        retired.append(row.kid)
    db.session.flush()
    return create_key(), retired


def current_key() -> SigningKey:
    """The key that signs now: the newest key not retired, created on first use."""
    row = db.session.scalar(
        select(SigningKey).where(SigningKey.retired_at.is_(None))
        .order_by(SigningKey.created_at.desc(), SigningKey.kid).limit(1)
    )
    if row is not None:
        return row
    db.session.commit()  # the first key: written in a transaction of its own (see credential.issue)
    return create_key()


def _secret_fingerprint() -> str:
    return hashlib.sha256(_password()).hexdigest()[:16]


def private_key(row: SigningKey) -> Ed25519PrivateKey:
    """The decrypted private key of a stored key (503 if SECRET_KEY no longer opens it)."""
    cache_key = (row.kid, _secret_fingerprint())
    key = _private_cache.get(cache_key)
    if key is None:
        try:
            key = serialization.load_pem_private_key(row.private_pem.encode("ascii"), _password())
        except (ValueError, TypeError):
            raise APIError(503, "signing_key_unavailable",
                           "签名密钥无法解密（SECRET_KEY 已更换？），请管理员运行 flask keys rotate。") from None
        _private_cache[cache_key] = key
    return key


def jwks() -> dict:
    """Every public key, signing and retired, newest first: {"keys": [JWK, ...]}."""
    rows = db.session.scalars(select(SigningKey).order_by(SigningKey.created_at.desc(), SigningKey.kid)).all()
    return {"keys": [row.public_jwk for row in rows]}


def public_key_from_jwk(jwk: dict) -> Ed25519PublicKey | None:
    """An Ed25519 public key from an OKP JWK, or None when the JWK is not one."""
    if not isinstance(jwk, dict) or jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
        return None
    try:
        raw = base64.urlsafe_b64decode(jwk["x"] + "=" * (-len(jwk["x"]) % 4))
        return Ed25519PublicKey.from_public_bytes(raw)
    except (KeyError, ValueError, TypeError):
        return None


def public_key(kid: str) -> Ed25519PublicKey | None:
    """The public key named `kid` from the database (cached), or None when no such key exists."""
    key = _public_cache.get(kid)
    if key is None:
        row = db.session.get(SigningKey, kid)
        if row is None:
            return None
        key = public_key_from_jwk(row.public_jwk)
        if key is not None:
            _public_cache[kid] = key
    return key
