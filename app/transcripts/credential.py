"""The signed transcript: a VC-JWT shaped as an Open Badges 3.0 AchievementCredential, Ed25519.

Shape (VC Data Model 2.0 / OB 3.0 §8.2 JWT proof): the JWT payload *is* the credential, with the
registered claims `iss` (issuer.id), `jti` (id), `sub` (credentialSubject.id), `nbf` (validFrom)
and `exp` (validUntil) added; the JOSE header is {"alg": "EdDSA", "typ": "JWT", "kid"}.

* issuer: the school, {"id": "{PUBLIC_BASE_URL}/schools/{id}", "type": ["Profile"], "name"};
* credentialSubject: the student by an opaque id (`urn:uuid:` derived from SECRET_KEY by HMAC: the
  same pupil always gets the same id, which reveals nothing of the database) plus the name, the
  yearly achievement (criteria = the grade's requirement), `creditsEarned`, OB 3.0 results (total
  credits, requirement met) and `creditSummary`: totals by kind and by term, the rule version and
  the hash of the year's last ledger entry (anchoring the credential in the tamper-evident ledger);
* credentialStatus: a 1EdTech revocation list for this one credential,
  `{PUBLIC_BASE_URL}/api/v1/credentials/{public_id}/status`.

A credential is a snapshot at `validFrom`, valid for CREDENTIAL_VALID_DAYS (730 by default); a school
admin revokes it with POST /api/v1/credentials/{public_id}/revoke. Reading a transcript reuses the
latest credential while its content (ledger head, totals, name, rule version) and the signing key
are unchanged, so printing a transcript twice gives the same QR.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import jwt
from cryptography.exceptions import InvalidSignature
from flask import current_app
from sqlalchemy import select

from app.credits.rules import ACTIVITY_KIND_LABELS
from app.db import utcnow
from app.extensions import db
from app.transcripts import keys
from app.transcripts.models import IssuedCredential

CONTEXTS = [
    "https://www.w3.org/ns/credentials/v2",
    "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json",
]
DEFAULT_VALID_DAYS = 730
REUSE_MARGIN = timedelta(days=30)  # a credential this close to its end is not handed out again
LEEWAY_SECONDS = 60  # clock skew tolerated between issuer and verifier

REASONS = {
    "malformed": "这不是一份格式正确的学分报告单凭证。",
    "unknown_key": "签名所用的密钥不在本系统公布的密钥列表中，无法确认签发者。",
    "bad_signature": "签名校验失败：内容已被改动，或并非本系统签发。",
    "expired": "该凭证已过有效期，请向学校索取新的学分报告单。",
    "not_yet_valid": "该凭证尚未生效。",
    "revoked": "该凭证已被学校撤销。",
    "unknown_credential": "本系统没有签发过该凭证的记录。",
}


def _base_url() -> str:
    return current_app.config["PUBLIC_BASE_URL"].rstrip("/")


def verify_url(public_id: str) -> str:
    return f"{_base_url()}/verify/{public_id}"


def status_url(public_id: str) -> str:
    return f"{_base_url()}/api/v1/credentials/{public_id}/status"


def subject_id(student_id: int) -> str:
    """The student's opaque, stable identifier in credentials: `urn:uuid:` of an HMAC of the id."""
    digest = hmac.new(current_app.config["SECRET_KEY"].encode(), f"credential-subject:{student_id}".encode(),
                      hashlib.sha256).digest()
    return f"urn:uuid:{uuid.UUID(bytes=digest[:16], version=4)}"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _content(transcript: dict, chain: dict) -> tuple[dict, dict]:
    """(issuer, credentialSubject) of a transcript: everything signed except ids and times."""
    student = transcript["student"]
    year = transcript["school_year"]
    issuer = {"id": f"{_base_url()}/schools/{student['school_id']}", "type": ["Profile"],
              "name": student["school_name"]}
    kinds_words = "、".join(ACTIVITY_KIND_LABELS.get(k, k) for k in transcript["kinds"]) or "无"
    subject = {
        "id": subject_id(student["id"]),
        "type": ["AchievementSubject"],
        "name": student["name"],
        "identifier": [{"type": "IdentityObject", "identityType": "name", "hashed": False,
                        "identityHash": student["name"]}],
        "term": f"{year} 学年",
        "creditsEarned": float(transcript["total"]),
        "achievement": {
            "id": f"{_base_url()}/achievements/science-education-credits/{year}/grade-{student['grade']}",
            "type": ["Achievement"],
            "achievementType": "Achievement",
            "name": f"{year} 学年科普教育学分",
            "description": "《深圳经济特区科学技术普及条例》第二十六条：义务教育阶段学生科普教育学分（科普活动与科技竞赛）。",
            "criteria": {"narrative": f"{student['grade']} 年级年度要求：{transcript['required']} 学分"
                                      f"（规则 {transcript['rule_version']}）"},
            "creditsAvailable": float(transcript["required"]),
        },
        "result": [
            {"type": ["Result"], "resultDescription": "total_credits", "value": transcript["total"]},
            {"type": ["Result"], "resultDescription": "requirement",
             "status": "Completed" if transcript["met"] else "InProgress"},
        ],
        "creditSummary": {
            "schoolYear": year,
            "grade": student["grade"],
            "total": transcript["total"],
            "required": transcript["required"],
            "met": transcript["met"],
            "kinds": list(transcript["kinds"]),
            "kindsText": kinds_words,
            "byKind": dict(transcript["by_kind"]),
            "byTerm": dict(transcript["by_term"]),
            "ruleVersion": transcript["rule_version"],
            "entries": chain["entries"],
            "ledgerHead": chain["ledger_head"],
        },
    }
    return issuer, subject


def _content_hash(issuer: dict, subject: dict) -> str:
    canonical = json.dumps({"issuer": issuer, "credentialSubject": subject}, sort_keys=True,
                           separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def issue(transcript: dict, chain: dict, *, actor_id: int | None) -> IssuedCredential:
    """The credential of a transcript (its head: totals and student) and of the year's ledger chain
    ({"entries": N, "ledger_head": hash of the year's last entry}): the latest credential if nothing
    it says has changed, else a new one signed with the current key (commits what the request did
    before, adds and flushes the new row; the caller commits it)."""
    issuer, subject = _content(transcript, chain)
    content_hash = _content_hash(issuer, subject)
    student = transcript["student"]
    signing = keys.current_key()
    now = utcnow()
    latest = db.session.scalar(
        select(IssuedCredential)
        .where(IssuedCredential.student_id == student["id"], IssuedCredential.school_year == transcript["school_year"])
        .order_by(IssuedCredential.id.desc()).limit(1)
    )
    if (latest is not None and latest.status == "active" and latest.content_hash == content_hash
            and latest.kid == signing.kid and latest.expires_at > now + REUSE_MARGIN):
        return latest

    # A new credential is written by a GET: end the reading transaction first so that, on SQLite, the
    # write starts a transaction of its own and waits for the lock instead of failing on a stale
    # snapshot (see audit.service); the content above is a consistent snapshot all the same.
    db.session.commit()
    public_id = secrets.token_urlsafe(12)  # 16 characters, 96 random bits
    valid_days = int(current_app.config.get("CREDENTIAL_VALID_DAYS") or DEFAULT_VALID_DAYS)
    issued_at = now.replace(microsecond=0)
    expires_at = issued_at + timedelta(days=valid_days)
    credential_id = verify_url(public_id)
    payload = {
        "@context": CONTEXTS,
        "id": credential_id,
        "type": ["VerifiableCredential", "OpenBadgeCredential"],
        "name": f"{student['school_name']} {transcript['school_year']} 学年科普教育学分报告单",
        "issuer": issuer,
        "validFrom": _iso(issued_at),
        "validUntil": _iso(expires_at),
        "credentialSubject": subject,
        "credentialStatus": {"id": status_url(public_id), "type": "1EdTechRevocationList"},
        "iss": issuer["id"],
        "jti": credential_id,
        "sub": subject["id"],
        "nbf": int(issued_at.timestamp()),
        "exp": int(expires_at.timestamp()),
    }
    token = jwt.encode(payload, keys.private_key(signing), algorithm=keys.ALGORITHM,
                       headers={"kid": signing.kid, "typ": "JWT"})
    row = IssuedCredential(
        public_id=public_id, student_id=student["id"], school_id=student["school_id"],
        school_year=transcript["school_year"], kid=signing.kid, content_hash=content_hash,
        ledger_head=subject["creditSummary"]["ledgerHead"], entries=subject["creditSummary"]["entries"],
        token=token, issued_at=issued_at, expires_at=expires_at, issued_by=actor_id, status="active",
    )
    db.session.add(row)
    db.session.flush()
    return row


def credential_view(row: IssuedCredential) -> dict:
    """The "credential" member of a transcript."""
    return {
        "id": row.public_id,
        "type": ["VerifiableCredential", "OpenBadgeCredential"],
        "format": "vc+jwt",
        "jwt": row.token,
        "kid": row.kid,
        "verify_url": verify_url(row.public_id),
        "status_url": status_url(row.public_id),
        "valid_from": _iso(row.issued_at),
        "valid_until": _iso(row.expires_at),
        "status": row.status,
        "entries": row.entries,
        "ledger_head": row.ledger_head,
    }


# --------------------------------------------------------------------------------------------------
# Verification


@dataclass
class Verification:
    valid: bool
    reason: str | None = None
    claims: dict | None = None
    header: dict | None = None
    record: IssuedCredential | None = field(default=None, repr=False)

    @property
    def message(self) -> str:
        return "凭证有效：由签发学校签名，内容未被改动。" if self.valid else REASONS[self.reason]

    def as_dict(self) -> dict:
        return {"valid": self.valid, "reason": self.reason, "message": self.message, "claims": self.claims}


def _b64decode(segment: str) -> bytes:
    """Strict base64url: only the URL-safe alphabet, no padding, and canonical (re-encodes to itself)."""
    if not segment or any(c not in _B64_ALPHABET for c in segment):
        raise ValueError("not base64url")
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("not base64url") from None
    if keys.b64url(raw) != segment:
        raise ValueError("non-canonical base64url")
    return raw


_B64_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
_REQUIRED_CLAIMS = ("iss", "jti", "sub", "nbf", "exp", "credentialSubject", "issuer", "type")


def verify_token(token, *, jwks: dict | None = None, now: datetime | None = None,
                 check_status: bool = True) -> Verification:
    """Check a credential: form, key, signature, validity period and (with `check_status`, online)
    revocation. `jwks` verifies against a given key set instead of this server's keys."""
    if not isinstance(token, str):
        return Verification(False, "malformed")
    parts = token.strip().split(".")
    if len(parts) != 3:
        return Verification(False, "malformed")
    try:
        header = json.loads(_b64decode(parts[0]))
    except ValueError:
        return Verification(False, "malformed")
    if not isinstance(header, dict) or header.get("alg") != keys.ALGORITHM:
        return Verification(False, "malformed", header=header if isinstance(header, dict) else None)
    kid = header.get("kid")
    if not isinstance(kid, str):
        return Verification(False, "unknown_key", header=header)
    if jwks is None:
        public = keys.public_key(kid)
    else:
        jwk = next((k for k in jwks.get("keys", []) if isinstance(k, dict) and k.get("kid") == kid), None)
        public = keys.public_key_from_jwk(jwk) if jwk else None
    if public is None:
        return Verification(False, "unknown_key", header=header)
    try:
        signature = _b64decode(parts[2])
        public.verify(signature, f"{parts[0]}.{parts[1]}".encode("ascii"))
    except (ValueError, InvalidSignature, UnicodeEncodeError):
        return Verification(False, "bad_signature", header=header)
    try:
        claims = json.loads(_b64decode(parts[1]))
    except ValueError:
        return Verification(False, "malformed", header=header)
    if not isinstance(claims, dict) or any(name not in claims for name in _REQUIRED_CLAIMS) \
            or not isinstance(claims["nbf"], int | float) or not isinstance(claims["exp"], int | float):
        return Verification(False, "malformed", header=header)
    moment = (now or utcnow()).timestamp()
    if claims["exp"] < moment - LEEWAY_SECONDS:
        return Verification(False, "expired", claims=claims, header=header)
    if claims["nbf"] > moment + LEEWAY_SECONDS:
        return Verification(False, "not_yet_valid", claims=claims, header=header)
    if not check_status:
        return Verification(True, None, claims=claims, header=header)
    public_id = str(claims["jti"]).rsplit("/", 1)[-1]
    record = db.session.scalar(select(IssuedCredential).where(IssuedCredential.public_id == public_id))
    if record is None or record.token != token.strip():
        return Verification(False, "unknown_credential", claims=claims, header=header)
    if record.status == "revoked":
        return Verification(False, "revoked", claims=claims, header=header, record=record)
    return Verification(True, None, claims=claims, header=header, record=record)


def revocation_list(row: IssuedCredential) -> dict:
    """The credentialStatus document of one credential (a 1EdTech revocation list of 0 or 1 entries)."""
    revoked = []
    if row.status == "revoked":
        revoked.append({"id": verify_url(row.public_id), "revocationReason": row.revocation_reason or ""})
    return {
        "id": status_url(row.public_id),
        "issuer": f"{_base_url()}/schools/{row.school_id}",
        "status": row.status,
        "revoked_at": _iso(row.revoked_at) if row.revoked_at else None,
        "revokedCredentials": revoked,
    }


def revoke(row: IssuedCredential, *, reason: str, actor_id: int) -> IssuedCredential:
    """Put a credential on the revocation list (idempotent; the caller commits)."""
    if row.status != "revoked":
        row.status, row.revoked_at, row.revoked_by, row.revocation_reason = "revoked", utcnow(), actor_id, reason
    return row
