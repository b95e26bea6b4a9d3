"""The ledger (paged, verifiable) and rule-set versions. Transcripts live in app/transcripts/routes.py."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select

from app.audit.service import record_read
from app.auth.scope import current_user, get_student, roles_required
from app.common import documents, error_responses, page_schema, paginate
from app.credits import ledger
from app.credits import service as credit_service
from app.credits.models import LedgerEntry, RuleVersion
from app.credits.schemas import (
    LedgerArgs,
    RecomputeSchema,
    RuleCreateSchema,
    RuleVersionListSchema,
    RuleVersionSchema,
    RuleVersionSummarySchema,
    SimulationSchema,
    VerifySchema,
    YearArgs,
)
from app.errors import APIError
from app.extensions import db
from app.transcripts import service as transcripts
from app.transcripts.schemas import LedgerEntrySchema

blp = Blueprint("credits", __name__, url_prefix="/api/v1", description="学分记录、学分报告单与规则 Ledger")

RECORD_READERS = ("student", "guardian", "teacher", "school_admin")


@blp.route("/students/<int:student_id>/ledger", methods=["GET"])
@roles_required(*RECORD_READERS)
@blp.arguments(LedgerArgs, location="query")
@blp.response(200)
@documents(blp, 200, page_schema(LedgerEntrySchema))
def student_ledger(args, student_id):
    """The student's ledger entries in seq order (paged), each with its explanation and hashes."""
    user = current_user()
    student = get_student(user, student_id)
    record_read(user, student, "ledger")
    query = select(LedgerEntry).where(LedgerEntry.student_id == student.id).order_by(LedgerEntry.seq)
    if "school_year" in args:
        query = query.where(LedgerEntry.school_year == args["school_year"])
    page = paginate(query, args)
    page["items"] = [transcripts.entry_view(e) for e in page["items"]]
    return page


@blp.route("/students/<int:student_id>/ledger/verify", methods=["GET"])
@roles_required(*RECORD_READERS)
@blp.response(200, VerifySchema)
def verify_ledger(student_id):
    """Recompute the student's hash chain: ok, entries, head hash and the first bad seq."""
    user = current_user()
    student = get_student(user, student_id)
    record_read(user, student, "ledger_verify")
    return ledger.verify_chain(student.id).as_dict()


@blp.route("/rules")
class Rules(MethodView):
    @roles_required()
    @blp.response(200)
    @documents(blp, 200, RuleVersionListSchema)
    def get(self):
        """Rule-set versions, newest first."""
        rows = db.session.scalars(select(RuleVersion).order_by(RuleVersion.effective_from.desc())).all()
        return {"items": [RuleVersionSummarySchema().dump(r) for r in rows]}

    @roles_required("admin", "city_officer")
    @blp.arguments(RuleCreateSchema)
    @blp.response(201, RuleVersionSchema)
    @error_responses(blp, 409)
    def post(self, body):
        """Add a rule-set version (validated; not active until activated)."""
        document = {**body["document"], "version": body["version"],
                    "effective_from": body["effective_from"].isoformat()}
        row = credit_service.add_rule_version(document)
        db.session.commit()
        return row


@blp.route("/rules/<version>", methods=["GET"])
@roles_required()
@blp.response(200, RuleVersionSchema)
def get_rules(version):
    """One rule-set version with its document (the rule file as JSON)."""
    row = db.session.get(RuleVersion, version)
    if row is None:
        raise APIError(404, "not_found", "找不到该规则版本。")
    return row


@blp.route("/rules/<version>/activate", methods=["POST"])
@roles_required("admin", "city_officer")
@blp.response(200, RuleVersionSchema)
def activate_rules(version):
    """Make this version compute every new credit from now on."""
    row = db.session.get(RuleVersion, version)
    if row is None:
        raise APIError(404, "not_found", "找不到该规则版本。")
    credit_service.activate_version(row)
    db.session.commit()
    return row


@blp.route("/rules/<version>/simulate", methods=["POST"])
@roles_required("admin", "city_officer")
@blp.arguments(YearArgs, location="query")
@blp.response(200)
@documents(blp, 200, SimulationSchema)
def simulate_rules(args, version):
    """What this version would change in a school year, per school — nothing is written."""
    from app.credits import recompute

    rules = credit_service.rules_by_version(version)
    result = recompute.simulate(rules, credit_service.active_rules(), args["school_year"])
    db.session.rollback()
    return result


@blp.route("/rules/<version>/recompute", methods=["POST"])
@roles_required("admin", "city_officer")
@blp.arguments(YearArgs, location="query")
@blp.response(200)
@documents(blp, 200, RecomputeSchema)
def recompute_rules(args, version):
    """Write adjustment entries so every pupil's year equals this version's result (idempotent)."""
    from app.credits import recompute

    rules = credit_service.rules_by_version(version)
    written = recompute.recompute(rules, credit_service.active_rules(), args["school_year"],
                                  actor_id=current_user().id)
    return {"version": version, "school_year": args["school_year"], "adjustments": written}
