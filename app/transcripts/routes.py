"""Transcripts (JSON, PDF), the guardian and class views, and verifiable credentials.

Two blueprints: `blp` under /api/v1, and `public_blp` for what needs no login and lives at the
site root: the JWKS at /.well-known/jwks.json and the verify page /verify/{id-or-token} that the
transcript's QR code opens.
"""

from __future__ import annotations

from urllib.parse import quote

from flask import Response, render_template
from flask_smorest import Blueprint
from sqlalchemy import select

from app.audit.service import record_read, record_reads
from app.auth.scope import current_user, get_class, get_school, get_student, roles_required
from app.common import documents, error_responses, file_responses
from app.credits.rules import ACTIVITY_KIND_LABELS, local_date, school_year_of
from app.db import utcnow
from app.errors import not_found
from app.extensions import db
from app.orgs.models import SchoolClass, Student
from app.transcripts import credential, pdf, progress, service
from app.transcripts.models import IssuedCredential
from app.transcripts.schemas import (
    ChildrenSchema,
    ClassProgressArgs,
    ClassProgressSchema,
    CredentialSchema,
    CredentialStatusSchema,
    RevokeBody,
    TranscriptArgs,
    TranscriptSchema,
    VerifyBody,
    VerifyResultSchema,
    YearArgs,
)

blp = Blueprint("transcripts", __name__, url_prefix="/api/v1",
                description="学分报告单、进度与可验证凭证 Transcripts, progress and credentials")
public_blp = Blueprint("verify", __name__, template_folder="templates",
                       description="公开验证（无需登录）Public verification")

RECORD_READERS = ("student", "guardian", "teacher", "school_admin")
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PUBLIC = {"security": []}


def _school_year(args: dict) -> str:
    return service.check_school_year(args.get("school_year") or school_year_of(local_date(utcnow())))


def _download(data: bytes, mimetype: str, filename: str, *, inline: bool = False) -> Response:
    response = Response(data, mimetype=mimetype)
    disposition = "inline" if inline else "attachment"
    ascii_name = filename.encode("ascii", "ignore").decode() or "download"
    response.headers["Content-Disposition"] = (
        f"{disposition}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}")
    response.headers["Cache-Control"] = "no-store"  # a child's record: never kept by a shared cache
    return response


@blp.route("/students/<int:student_id>/transcript", methods=["GET"])
@roles_required(*RECORD_READERS)
@blp.arguments(TranscriptArgs, location="query")
@blp.response(200)
@documents(blp, 200, TranscriptSchema)
@file_responses(blp, "application/pdf")
def student_transcript(args, student_id):
    """The yearly transcript (学分报告单) with its signed credential; ?format=pdf for the printable page.

    Reading it issues a credential for these totals, or reuses the latest one while the ledger and the
    signing key have not changed.
    """
    user = current_user()
    student = get_student(user, student_id)
    school_year = _school_year(args)
    # The audit row is written (and a new credential committed with it) once the record is read and
    # before it is sent: nothing leaves without its trace, and nothing is reloaded after the commit.
    if args["format"] == "pdf":
        data = service.signed_head(student, school_year, actor_id=user.id)
        entries = pdf.table_entries(student.id, school_year)
        record_read(user, student, "transcript_pdf")
        db.session.commit()  # a new credential, when the reader is the pupil or their guardian (no audit row)
        document = pdf.render(data, entries)
        return _download(document, "application/pdf", f"transcript-{student_id}-{school_year}.pdf", inline=True)
    body = service.transcript_json(student, school_year, actor_id=user.id)
    record_read(user, student, "transcript")
    db.session.commit()  # a new credential, when the reader is the pupil or their guardian (no audit row)
    response = Response(body, mimetype="application/json")
    response.headers["Cache-Control"] = "no-store"
    return response


@blp.route("/me/children", methods=["GET"])
@roles_required("guardian")
@blp.arguments(YearArgs, location="query")
@blp.response(200, ChildrenSchema)
def my_children(args):
    """A parent's linked children: yearly progress, what is missing, last stays and open reviews."""
    return {"items": progress.children(current_user().id, _school_year(args))}


@blp.route("/classes/<int:class_id>/progress", methods=["GET"])
@roles_required("teacher", "school_admin")
@blp.arguments(ClassProgressArgs, location="query")
@blp.response(200, ClassProgressSchema)
@file_responses(blp, XLSX)
def class_progress(args, class_id):
    """One row per pupil of the class (total, requirement, kinds, last activity, open reviews), sortable;
    ?format=xlsx for Excel. Each pupil's row read is written to the audit log."""
    user = current_user()
    klass = get_class(user, class_id)
    school_year = _school_year(args)
    students = progress.class_students(klass.id)
    items = progress.sort_rows(progress.rows(students, school_year), args["sort"])
    class_id, class_name = klass.id, klass.name
    record_reads(user, [row["student_id"] for row in items], "progress_xlsx" if args["format"] == "xlsx" else "progress")
    if args["format"] == "xlsx":
        return _download(progress.workbook([(klass, items)], school_year), XLSX,
                         f"{class_name}-{school_year}-科普学分进度.xlsx")
    return {"class_id": class_id, "class_name": class_name, "school_year": school_year, "items": items}


@blp.route("/schools/<int:school_id>/progress.xlsx", methods=["GET"])
@roles_required("school_admin")
@blp.arguments(YearArgs, location="query")
@file_responses(blp, XLSX)
def school_progress_xlsx(args, school_id):
    """The whole school's progress as one workbook: a sheet per class, a row per pupil (audited)."""
    user = current_user()
    school = get_school(user, school_id)
    school_year = _school_year(args)
    classes = db.session.scalars(
        select(SchoolClass).where(SchoolClass.school_id == school.id).order_by(SchoolClass.grade, SchoolClass.name)
    ).all()
    students = db.session.scalars(
        select(Student).where(Student.school_id == school.id).order_by(Student.student_number, Student.id)
    ).all()
    rows = {row["student_id"]: row for row in progress.rows(students, school_year)}
    sheets = [(klass, [rows[s.id] for s in students if s.class_id == klass.id]) for klass in classes]
    workbook = progress.workbook(sheets, school_year)
    filename = f"{school.name}-{school_year}-科普学分进度.xlsx"
    record_reads(user, list(rows), "progress_export")
    return _download(workbook, XLSX, filename)


# --------------------------------------------------------------------------------------------------
# Credentials


@blp.route("/credentials/verify", methods=["POST"])
@blp.doc(**PUBLIC)
@blp.arguments(VerifyBody)
@blp.response(200, VerifyResultSchema)
def verify_credential(body):
    """Check a transcript credential (no login): signature, key, validity period, revocation.

    `reason` is null when valid, else one of malformed, unknown_key, bad_signature, expired,
    not_yet_valid, revoked, unknown_credential; `claims` is the signed content whenever the
    signature holds (also for an expired or revoked credential), else null.
    """
    return credential.verify_token(body["credential"]).as_dict()


def _credential_row(public_id: str) -> IssuedCredential | None:
    return db.session.scalar(select(IssuedCredential).where(IssuedCredential.public_id == public_id))


def _credential_view(row: IssuedCredential) -> dict:
    return {
        "id": row.public_id, "student_id": row.student_id, "school_year": row.school_year, "kid": row.kid,
        "verify_url": credential.verify_url(row.public_id), "status": row.status,
        "valid_from": credential._iso(row.issued_at), "valid_until": credential._iso(row.expires_at),
        "revoked_at": credential._iso(row.revoked_at) if row.revoked_at else None,
        "revocation_reason": row.revocation_reason,
    }


@blp.route("/credentials/<public_id>/revoke", methods=["POST"])
@roles_required("school_admin")
@blp.arguments(RevokeBody)
@blp.response(200, CredentialSchema)
def revoke_credential(body, public_id):
    """Revoke a transcript credential of the caller's school (with a reason); verifying it fails from now on."""
    user = current_user()
    row = _credential_row(public_id)
    if row is None or (user.role != "admin" and row.school_id != user.school_id):
        raise not_found("凭证")
    credential.revoke(row, reason=body["reason"], actor_id=user.id)
    db.session.commit()
    return _credential_view(row)


@blp.route("/credentials/<public_id>/status", methods=["GET"])
@blp.doc(**PUBLIC)
@blp.response(200)
@documents(blp, 200, CredentialStatusSchema)
def credential_status(public_id):
    """The credentialStatus of a credential (no login): a 1EdTech revocation list of zero or one entry."""
    row = _credential_row(public_id)
    if row is None:
        raise not_found("凭证")
    return credential.revocation_list(row)


@public_blp.route("/.well-known/jwks.json", methods=["GET"])
@public_blp.doc(**PUBLIC)
@file_responses(public_blp, "application/jwk-set+json", schema={"type": "object"})
def jwks():
    """The public keys that sign transcript credentials, current and retired (verify offline with these)."""
    from app.transcripts import keys

    response = Response(_json(keys.jwks()), mimetype="application/jwk-set+json")
    response.headers["Cache-Control"] = "public, max-age=300"
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


def _json(data) -> str:
    import json

    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def _local_times(claims: dict | None) -> dict:
    """validFrom / validUntil as Beijing time for the page ("2026-07-01 10:00")."""
    from datetime import datetime

    from app.common import SHANGHAI

    out = {}
    for name in ("validFrom", "validUntil"):
        try:
            moment = datetime.fromisoformat(str((claims or {}).get(name)).replace("Z", "+00:00"))
            out[name] = moment.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")
        except ValueError:
            out[name] = ""
    return out


@public_blp.route("/verify/<path:ref>", methods=["GET"])
@public_blp.doc(**PUBLIC)
@file_responses(public_blp, "text/html", schema={"type": "string"})
@public_blp.alt_response(404, schema={"type": "string"}, content_type="text/html",
                         description="no such credential: the same page, saying so (a ref no URL can name: JSON)")
@error_responses(public_blp, 404)
def verify_page(ref):
    """The page a transcript's QR code opens: valid or not, why, and what the credential says."""
    if "." in ref:  # a whole VC-JWT pasted into the URL
        result = credential.verify_token(ref)
        status = 200
    else:
        row = _credential_row(ref)
        result = credential.verify_token(row.token) if row is not None else None
        status = 200 if row is not None else 404
    # A revoked credential may have been revoked to protect the child: its contents are not shown.
    shown = result is not None and result.claims is not None and result.reason != "revoked"
    claims = result.claims if shown else None
    html = render_template("transcripts/verify.html", result=result, claims=claims, kind_labels=ACTIVITY_KIND_LABELS,
                           ref=ref, local=_local_times(claims))
    response = Response(html, status=status, mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
