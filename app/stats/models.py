"""Roll-up tables behind the bureau statistics (SPEC §8): compact, indexed, kept exact by app.stats.rollup.

Amounts are integer cents (the ledger's own storage), so every sum is exact on SQLite and PostgreSQL.
The tables are derived data (rebuilt by ``flask stats rebuild``, compared by ``flask stats check``), so
they carry no foreign keys: a key check per row would slow every rebuild and every new fine cell.

* ``stats_student_cells`` — per pupil, school year, credit kind, venue and local month: the net amount
  and the number of check-in credits. The finest grain; every other table is derived from it.
* ``stats_students`` — the school, grade and ``active`` flag each pupil is *counted as* in the
  aggregates (so a later transfer, promotion or deactivation can be moved exactly).
* ``stats_cells`` — per school year, school, grade and entry grain (all / kind / venue kind / month and
  their pairs): pupils participating (positive net), net credits, pupils meeting the requirement.
* ``stats_venue_cells`` — per school year, venue, month ('' = the whole year) and pupils' school: pupils
  reached, check-ins, net credits (the 科普活动指数).
* ``stats_district_cells`` and ``stats_venue_districts`` — the same per district (plus, for venues,
  how many of the district's schools were reached): what city- and district-wide answers read, a
  hundred times fewer rows than the school-level tables.
* ``stats_population`` — active pupils per school and grade (the denominator).
* ``stats_dirty`` — pupils and venues changed since they were counted (filled by database triggers).
* ``stats_state`` — the rule version the ``met`` counts were computed under.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Integer, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import UTCDateTime
from app.extensions import db


class StatsStudentCell(db.Model):
    """One pupil's net credits in one (school year, kind, venue, month); venue_id 0 = no venue."""

    __tablename__ = "stats_student_cells"

    student_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    school_year: Mapped[str] = mapped_column(String(9), primary_key=True)
    activity_kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    venue_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    month: Mapped[str] = mapped_column(String(7), primary_key=True)
    venue_kind: Mapped[str] = mapped_column(String(32))  # as counted in stats_cells ("none" without venue)
    amount: Mapped[int] = mapped_column(BigInteger)  # cents
    checkins: Mapped[int] = mapped_column(Integer)


class StatsStudent(db.Model):
    """The school, grade and active flag a pupil's contributions are currently counted under."""

    __tablename__ = "stats_students"

    student_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    school_id: Mapped[int] = mapped_column(Integer)
    grade: Mapped[int] = mapped_column(SmallInteger)
    active: Mapped[bool] = mapped_column(Boolean)


class StatsCell(db.Model):
    """Aggregates of one school's grade in one entry cell ('' in a dimension = all of it)."""

    __tablename__ = "stats_cells"

    school_year: Mapped[str] = mapped_column(String(9), primary_key=True)
    # bit 1 activity_kind, bit 2 venue_kind, bit 4 month: which entry dimensions this row splits by
    grain: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    school_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    grade: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    activity_kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    venue_kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    month: Mapped[str] = mapped_column(String(7), primary_key=True)
    participating: Mapped[int] = mapped_column(Integer)
    credits: Mapped[int] = mapped_column(BigInteger)  # cents
    met: Mapped[int] = mapped_column(Integer)  # grain 0 only


class StatsVenueCell(db.Model):
    """One venue's reach among one school's pupils in a school year (month '') or one month."""

    __tablename__ = "stats_venue_cells"

    school_year: Mapped[str] = mapped_column(String(9), primary_key=True)
    month: Mapped[str] = mapped_column(String(7), primary_key=True)
    venue_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    school_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    students: Mapped[int] = mapped_column(Integer)
    checkins: Mapped[int] = mapped_column(Integer)
    credits: Mapped[int] = mapped_column(BigInteger)  # cents


class StatsDistrictCell(db.Model):
    """stats_cells summed over a district's schools."""

    __tablename__ = "stats_district_cells"

    school_year: Mapped[str] = mapped_column(String(9), primary_key=True)
    grain: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    district_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    grade: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    activity_kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    venue_kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    month: Mapped[str] = mapped_column(String(7), primary_key=True)
    participating: Mapped[int] = mapped_column(Integer)
    credits: Mapped[int] = mapped_column(BigInteger)  # cents
    met: Mapped[int] = mapped_column(Integer)


class StatsVenueDistrict(db.Model):
    """stats_venue_cells summed over a district's schools, with the number of those schools reached."""

    __tablename__ = "stats_venue_districts"

    school_year: Mapped[str] = mapped_column(String(9), primary_key=True)
    month: Mapped[str] = mapped_column(String(7), primary_key=True)
    venue_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    district_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    students: Mapped[int] = mapped_column(Integer)
    checkins: Mapped[int] = mapped_column(Integer)
    credits: Mapped[int] = mapped_column(BigInteger)  # cents
    schools: Mapped[int] = mapped_column(Integer)


class StatsPopulation(db.Model):
    """Active pupils of one school's grade: the denominator of every rate."""

    __tablename__ = "stats_population"

    school_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    grade: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    students: Mapped[int] = mapped_column(Integer)


class StatsDirty(db.Model):
    """A ledger entry appended ("entry"), a pupil ("student"), venue ("venue") or school ("school",
    its district) changed since it was counted; folded or reconciled before the next answer.
    Filled by database triggers (migrations 0005 and 0008)."""

    __tablename__ = "stats_dirty"

    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    ref_id: Mapped[int] = mapped_column(Integer, primary_key=True)


class StatsState(db.Model):
    """A single row (id 1): the rule version of the stored ``met`` counts (NULL: recompute them)."""

    __tablename__ = "stats_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    met_rule_version: Mapped[str | None] = mapped_column(String(32))
    rebuilt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
