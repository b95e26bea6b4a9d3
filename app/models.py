"""Imports every model so that SQLAlchemy's metadata (and Alembic) sees the whole schema."""

from app.auth.models import StaffVenue, TeacherClass, User
from app.checkins.models import Checkin, Scan
from app.credits.models import LedgerEntry, RuleVersion
from app.orgs.models import District, GuardianInvite, GuardianLink, School, SchoolClass, Student
from app.venues.models import Activity, Venue

__all__ = [
    "Activity", "Checkin", "District", "GuardianInvite", "GuardianLink", "LedgerEntry", "RuleVersion",
    "Scan", "School", "SchoolClass", "StaffVenue", "Student", "TeacherClass", "User", "Venue",
]
