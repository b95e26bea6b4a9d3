"""Signing keys of transcript credentials, and every credential issued (the revocation list)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import UTCDateTime, utcnow
from app.extensions import db


class SigningKey(db.Model):
    """An Ed25519 key that signs transcript credentials.

    The private key is kept as PKCS#8 PEM encrypted with a password derived from SECRET_KEY, so every
    app server that shares the database and SECRET_KEY signs with the same key and a database dump
    alone cannot sign. A retired key signs nothing more, but its public JWK stays published in
    /.well-known/jwks.json so every credential it signed still verifies.
    """

    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)  # RFC 7638 thumbprint of the public JWK
    public_jwk: Mapped[dict] = mapped_column(JSON)
    private_pem: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class IssuedCredential(db.Model):
    """One signed transcript (VC-JWT). Its random `public_id` names it in the short verify URL
    printed as a QR code; `status` is its entry in the revocation list (credentialStatus)."""

    __tablename__ = "issued_credentials"
    __table_args__ = (Index("ix_issued_credentials_student_year", "student_id", "school_year"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    student_id: Mapped[int] = mapped_column(ForeignKey("students.id"))
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id"), index=True)
    school_year: Mapped[str] = mapped_column(String(9))
    kid: Mapped[str] = mapped_column(ForeignKey("signing_keys.kid"))
    # SHA-256 of the signed content (without its times): the same content is not signed twice.
    content_hash: Mapped[str] = mapped_column(String(64))
    ledger_head: Mapped[str] = mapped_column(String(64))
    entries: Mapped[int] = mapped_column(Integer)
    token: Mapped[str] = mapped_column(Text)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    issued_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | revoked
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    revocation_reason: Mapped[str | None] = mapped_column(String(500))
