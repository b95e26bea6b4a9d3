"""Review queue, decisions, appeals, competition claims, evidence, term close, adjustments."""

from __future__ import annotations

from flask import request, send_file
from flask_smorest import Blueprint
from marshmallow import ValidationError

from app.auth.scope import current_user, get_school, get_student, roles_required
from app.common import documents, error_responses, file_responses, page_schema, paginate
from app.errors import APIError
from app.reviews import service
from app.reviews.schemas import (
    AdjustmentSchema,
    AppealSchema,
    ClaimCreatedSchema,
    ClaimFormSchema,
    DecisionSchema,
    QueueArgs,
    ReviewSchema,
    TermClosureSchema,
)
from app.transcripts.schemas import LedgerEntrySchema
from app.transcripts.service import entry_view

blp = Blueprint("reviews", __name__, url_prefix="/api/v1", description="复核、申诉、竞赛获奖认定与学期归档 Reviews")

_claim_form = ClaimFormSchema()


@blp.route("/reviews", methods=["GET"])
@roles_required("teacher", "school_admin", "student", "guardian")
@blp.arguments(QueueArgs, location="query")
@blp.response(200)
@documents(blp, 200, page_schema(ReviewSchema))
def list_reviews(args):
    """The review queue (teachers: their classes; school admin: the school), oldest first.

    Pupils and guardians see their own items here too, to follow them and appeal.
    """
    page = paginate(service.queue(current_user(), args["status"]), args)
    page["items"] = [service.review_view(r) for r in page["items"]]
    return page


@blp.route("/reviews/<int:review_id>", methods=["GET"])
@roles_required("teacher", "school_admin", "student", "guardian")
@blp.response(200)
@documents(blp, 200, ReviewSchema)
def get_review(review_id):
    """One review with what is being reviewed and its history."""
    return service.review_view(service.get_review(current_user(), review_id))


@blp.route("/reviews/<int:review_id>", methods=["POST"])
@roles_required("teacher", "school_admin")
@blp.arguments(DecisionSchema)
@blp.response(200)
@documents(blp, 200, ReviewSchema)
@error_responses(blp, 409)
def decide(body, review_id):
    """Approve (writes the credit) or reject with a reason (reverses a credit already written)."""
    review = service.decide(user=current_user(), review_id=review_id, decision=body["decision"],
                            reason=body.get("reason"))
    return service.review_view(review)


@blp.route("/reviews/<int:review_id>/appeal", methods=["POST"])
@roles_required("student", "guardian")
@blp.arguments(AppealSchema)
@blp.response(200)
@documents(blp, 200, ReviewSchema)
@error_responses(blp, 409)
def appeal(body, review_id):
    """Appeal a rejection once, within 7 days; the school admin decides."""
    return service.review_view(service.appeal(user=current_user(), review_id=review_id, reason=body["reason"]))


@blp.route("/students/<int:student_id>/claims", methods=["POST"])
@roles_required("student", "guardian", "teacher")
@blp.response(201, ClaimCreatedSchema)
@error_responses(blp, 413, 422)
def submit_claim(student_id):
    """竞赛获奖认定: multipart form (competition, level, award, work_title, date) + file `evidence`.

    Evidence: JPG, PNG or PDF (checked by content), at most 10 MB.
    """
    request.max_content_length = service.MAX_EVIDENCE_BYTES + 64 * 1024
    user = current_user()
    student = get_student(user, student_id)
    try:
        form = _claim_form.load(request.form.to_dict())
    except ValidationError as exc:
        raise APIError(422, "validation_error", "提交的数据不符合要求。", {"fields": exc.messages}) from None
    upload = request.files.get("evidence")
    if upload is None:
        raise APIError(422, "validation_error", "请上传获奖证书等证明材料。", {"fields": {"evidence": ["必填。"]}})
    claim, review = service.submit_claim(
        student=student, actor=user, competition=form["competition"], level=form["level"], award=form["award"],
        work_title=form["work_title"], awarded_on=form["date"], filename=upload.filename or "", data=upload.read(),
    )
    return {"id": claim.id, "status": claim.status, "review_id": review.id}


@blp.route("/claims/<int:claim_id>/evidence", methods=["GET"])
@roles_required("teacher", "school_admin", "student", "guardian")
@file_responses(blp, "image/png", "image/jpeg", "application/pdf")
def evidence(claim_id):
    """The claim's evidence file, for the pupil, their guardians, their teachers and school admin."""
    claim = service.visible_claim(current_user(), claim_id)
    response = send_file(service.evidence_file(claim), mimetype=claim.evidence_type, download_name=claim.evidence_name)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "sandbox; default-src 'none'"
    return response


@blp.route("/schools/<int:school_id>/terms/<school_year>/<int:term>/close", methods=["POST"])
@roles_required("school_admin")
@blp.response(201, TermClosureSchema)
@error_responses(blp, 409, 422)
def close_term(school_id, school_year, term):
    """学期归档: freeze the term; later scans and approvals dated in it are refused (term_closed)."""
    user = current_user()
    school = get_school(user, school_id)
    return service.close_term(school_id=school.id, school_year=school_year, term=term, actor=user)


@blp.route("/students/<int:student_id>/adjustments", methods=["POST"])
@roles_required("school_admin")
@blp.arguments(AdjustmentSchema)
@blp.response(201)
@documents(blp, 201, LedgerEntrySchema)
def adjust(body, student_id):
    """A manual adjustment with a reason (also the only change allowed in a closed term)."""
    user = current_user()
    student = get_student(user, student_id)
    return entry_view(service.adjust(student=student, actor=user, **body))


