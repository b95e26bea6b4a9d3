"""The audit trail of reads of children's data, for school admins (own pupils) and admins."""

from __future__ import annotations

from flask_smorest import Blueprint
from marshmallow import Schema, fields
from sqlalchemy import select

from app.audit.models import AuditEntry
from app.auth.models import User
from app.auth.scope import current_user, get_student, roles_required
from app.common import AwareDateTime, Id, PageArgs, error_responses, page_schema, paginate
from app.extensions import db
from app.orgs.models import Student

blp = Blueprint("audit", __name__, url_prefix="/api/v1", description="个人数据访问记录 Audit log")


class AuditArgs(PageArgs):
    student_id = Id()
    actor_id = Id()


class AuditEntrySchema(Schema):
    id = fields.Integer()
    actor_id = fields.Integer()
    actor_username = fields.String(allow_none=True)
    actor_role = fields.String()
    student_id = fields.Integer()
    action = fields.String()
    route = fields.String()
    address = fields.String(allow_none=True)
    at = AwareDateTime()


@blp.route("/audit", methods=["GET"])
@roles_required("school_admin")
@blp.arguments(AuditArgs, location="query")
@blp.response(200, page_schema(AuditEntrySchema))
@error_responses(blp, 404)
def audit_log(args):
    """Who read which pupil's record, newest first (paged); a school admin sees their own school's pupils.

    The trail names pupils by id only, so reading it is not itself a read of a child's record.
    """
    user = current_user()
    query = select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
    if "student_id" in args:
        query = query.where(AuditEntry.student_id == get_student(user, args["student_id"]).id)
    if user.role == "school_admin":
        query = query.where(AuditEntry.student_id.in_(select(Student.id).where(Student.school_id == user.school_id)))
    if "actor_id" in args:
        query = query.where(AuditEntry.actor_id == args["actor_id"])
    page = paginate(query, args)
    actors = {u.id: u.username for u in db.session.scalars(
        select(User).where(User.id.in_({e.actor_id for e in page["items"]})))}
    page["items"] = [
        {"id": e.id, "actor_id": e.actor_id, "actor_username": actors.get(e.actor_id), "actor_role": e.actor_role,
         "student_id": e.student_id, "action": e.action,
         "route": e.route, "address": e.address, "at": e.at}
        for e in page["items"]
    ]
    return page
