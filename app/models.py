"""Imports every model so that SQLAlchemy's metadata (and Alembic) sees the whole schema."""

from app.audit.models import AuditEntry
from app.auth.models import StaffVenue, TeacherClass, User
from app.checkins.models import Checkin, Scan
from app.credits.models import LedgerEntry, RuleVersion
from app.matching.models import Booking, BookingAttendance
from app.orgs.models import District, GuardianInvite, GuardianLink, School, SchoolClass, Student
from app.reviews.models import CompetitionClaim, Review, ReviewEvent, TermClosure
from app.stats.models import (  # noqa: F401  (bureau statistics roll-ups)
    StatsCell,
    StatsDirty,
    StatsDistrictCell,
    StatsPopulation,
    StatsState,
    StatsStudent,
    StatsStudentCell,
    StatsVenueCell,
    StatsVenueDistrict,
)
from app.transcripts.models import IssuedCredential, SigningKey
from app.venues.models import Activity, Venue

__all__ = [
    "Booking", "BookingAttendance",
    "Activity", "AuditEntry", "Checkin", "District", "GuardianInvite", "GuardianLink", "LedgerEntry", "RuleVersion",
    "CompetitionClaim", "IssuedCredential", "Review", "ReviewEvent", "SigningKey", "TermClosure", "Scan", "School", "SchoolClass", "StaffVenue", "Student", "TeacherClass", "User", "Venue",
]
