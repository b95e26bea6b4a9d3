"""Districts, schools, classes, students, guardian invites and roster import."""

from __future__ import annotations

from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select

from app.audit.service import record_read
from app.auth.scope import (
    class_filter,
    current_user,
    get_class,
    get_school,
    get_student,
    roles_required,
    school_filter,
    student_filter,
)
from app.common import PageArgs, documents, error_responses, page_schema, paginate
from app.errors import APIError
from app.extensions import db
from app.orgs import roster, service
from app.orgs.models import District, School, SchoolClass, Student
from app.orgs.schemas import (
    ClassSchema,
    DistrictSchema,
    ImportArgs,
    InviteSchema,
    RosterImportSchema,
    SchoolListArgs,
    SchoolSchema,
    StudentListArgs,
    StudentSchema,
    StudentUpdateSchema,
)

blp = Blueprint("orgs", __name__, url_prefix="/api/v1", description="区、学校、班级与学生 Organisations")

READERS_OF_SCHOOLS = ("admin", "city_officer", "district_officer", "school_admin", "teacher")


@blp.route("/districts")
class Districts(MethodView):
    @roles_required(*READERS_OF_SCHOOLS, "venue_staff")
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, page_schema(DistrictSchema))
    def get(self, args):
        """All districts (public organisational data)."""
        return paginate(select(District).order_by(District.id), args)

    @roles_required("admin", "city_officer")
    @blp.arguments(DistrictSchema)
    @blp.response(201, DistrictSchema)
    @error_responses(blp, 409)
    def post(self, body):
        """Create a district."""
        return service.create_district(**body)


@blp.route("/districts/<int:district_id>")
@roles_required(*READERS_OF_SCHOOLS, "venue_staff")
@blp.response(200, DistrictSchema)
def get_district(district_id):
    """One district."""
    return service.get_district(district_id)


@blp.route("/schools")
class Schools(MethodView):
    @roles_required(*READERS_OF_SCHOOLS)
    @blp.arguments(SchoolListArgs, location="query")
    @blp.response(200, page_schema(SchoolSchema))
    def get(self, args):
        """Schools the caller may see (own district for a district officer, own school for staff)."""
        query = select(School).where(school_filter(current_user())).order_by(School.id)
        if "district_id" in args:
            query = query.where(School.district_id == args["district_id"])
        return paginate(query, args)

    @roles_required("admin", "city_officer")
    @blp.arguments(SchoolSchema)
    @blp.response(201, SchoolSchema)
    def post(self, body):
        """Create a school."""
        return service.create_school(**body)


@blp.route("/schools/<int:school_id>")
@roles_required(*READERS_OF_SCHOOLS)
@blp.response(200, SchoolSchema)
def get_school_route(school_id):
    """One school, when in the caller's scope."""
    return get_school(current_user(), school_id)


@blp.route("/classes")
class Classes(MethodView):
    @roles_required("admin", "school_admin", "teacher")
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, page_schema(ClassSchema))
    def get(self, args):
        """Classes the caller may see."""
        return paginate(select(SchoolClass).where(class_filter(current_user())).order_by(SchoolClass.id), args)

    @roles_required("admin", "school_admin")
    @blp.arguments(ClassSchema)
    @blp.response(201, ClassSchema)
    @error_responses(blp, 404, 409)
    def post(self, body):
        """Create a class (a school admin in its own school only)."""
        get_school(current_user(), body["school_id"])
        return service.create_class(**body)


@blp.route("/classes/<int:class_id>")
@roles_required("admin", "school_admin", "teacher")
@blp.response(200, ClassSchema)
def get_class_route(class_id):
    """One class, when in the caller's scope."""
    return get_class(current_user(), class_id)


@blp.route("/students")
class Students(MethodView):
    @roles_required("admin", "school_admin", "teacher", "guardian", "student")
    @blp.arguments(StudentListArgs, location="query")
    @blp.response(200, page_schema(StudentSchema))
    def get(self, args):
        """Students whose records the caller may read."""
        query = select(Student).where(student_filter(current_user())).order_by(Student.id)
        if "school_id" in args:
            query = query.where(Student.school_id == args["school_id"])
        if "class_id" in args:
            query = query.where(Student.class_id == args["class_id"])
        return paginate(query, args)

    @roles_required("admin", "school_admin")
    @blp.arguments(StudentSchema)
    @blp.response(201, StudentSchema)
    @error_responses(blp, 404, 409)
    def post(self, body):
        """Create a student (grade comes from the class)."""
        get_school(current_user(), body["school_id"])
        return service.create_student(**body)


@blp.route("/students/<int:student_id>")
class StudentItem(MethodView):
    @roles_required("admin", "school_admin", "teacher", "guardian", "student")
    @blp.response(200, StudentSchema)
    def get(self, student_id):
        """One student, when in the caller's scope."""
        user = current_user()
        student = get_student(user, student_id)
        record_read(user, student, "student")
        return student

    @roles_required("admin", "school_admin")
    @blp.arguments(StudentUpdateSchema)
    @blp.response(200, StudentSchema)
    def patch(self, body, student_id):
        """Change a student's class, name or active flag."""
        return service.update_student(get_student(current_user(), student_id), **body)


@blp.route("/students/<int:student_id>/guardian-invites", methods=["POST"])
@roles_required("admin", "school_admin", "teacher")
@blp.response(201, InviteSchema)
def create_invite(student_id):
    """Issue a one-time invite code (14 days) that links a parent to this student."""
    user = current_user()
    return service.issue_guardian_invite(student=get_student(user, student_id), actor=user)


@blp.route("/schools/<int:school_id>/students/import", methods=["POST"])
@roles_required("admin", "school_admin")
@blp.arguments(ImportArgs, location="query")
@blp.response(200)
@documents(blp, 200, RosterImportSchema)
@error_responses(blp, 400, 413)
def import_roster(args, school_id):
    """Import a roster (CSV or XLSX; 学号/姓名/年级/班级 or English headers); all-or-nothing unless ?partial=true.

    Send the file as multipart field `file`, or as the raw request body.
    """
    school = get_school(current_user(), school_id)
    upload = request.files.get("file")
    if upload is not None:
        data, filename = upload.read(), upload.filename or ""
    else:
        data, filename = request.get_data(), request.headers.get("X-Filename", "")
    if not data:
        raise APIError(400, "file_missing", "请上传花名册文件（CSV 或 XLSX）。")
    result = roster.import_roster(school=school, data=data, filename=filename, partial=args["partial"])
    db.session.commit()
    return result
