"""What crosses the wire for accounts."""

from marshmallow import Schema, fields, validate

from app.auth.models import ROLES
from app.common import Id, Text


class LoginSchema(Schema):
    username = Text(required=True, validate=validate.Length(min=1, max=64))
    password = Text(required=True, load_only=True, validate=validate.Length(min=1, max=256))


class RefreshSchema(Schema):
    refresh_token = Text(required=True, validate=validate.Length(min=1, max=4096))


class UserSchema(Schema):
    id = fields.Integer(dump_only=True)
    username = fields.String(required=True, validate=validate.Regexp(r"^[A-Za-z0-9_.@-]{3,64}$"))
    password = Text(required=True, load_only=True, validate=validate.Length(min=8, max=256))
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    display_name = Text(allow_none=True, validate=validate.Length(max=64))
    active = fields.Boolean(dump_only=True)
    student_id = Id(allow_none=True)
    school_id = Id(allow_none=True)
    district_id = Id(allow_none=True)
    class_ids = fields.List(Id(), load_default=list, validate=validate.Length(max=100))
    venue_ids = fields.List(Id(), load_default=list, validate=validate.Length(max=100))
    children = fields.List(fields.Integer(), dump_only=True)


class TokenPairSchema(Schema):
    access_token = fields.String()
    refresh_token = fields.String()
    token_type = fields.String()
    expires_in = fields.Integer()
    user = fields.Nested(UserSchema)


class RegisterGuardianSchema(Schema):
    username = fields.String(required=True, validate=validate.Regexp(r"^[A-Za-z0-9_.@-]{3,64}$"))
    password = Text(required=True, load_only=True, validate=validate.Length(min=8, max=256))
    invite_code = Text(required=True, validate=validate.Length(min=4, max=32))
    display_name = Text(validate=validate.Length(max=64))


class InviteCodeSchema(Schema):
    code = Text(required=True, validate=validate.Length(min=4, max=32))
