"""A school with pupils whose credits come from the real crediting code (stays and competition claims)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from app.checkins.models import Checkin
from app.credits.service import credit_claim, credit_stay
from app.extensions import db
from app.reviews.models import CompetitionClaim
from tests import factories as f

YEAR = "2025-2026"
# 10:00 in Shanghai on a Tuesday of term 1, and one of term 2.
TERM1 = datetime(2025, 10, 14, 2, 0, tzinfo=UTC)
TERM2 = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)


def credited_stay(pupil, activity, entered_at, minutes=60):
    """A completed stay credited by credits.service.credit_stay, as the scan pipeline does."""
    stay = Checkin(student_id=pupil.id, activity_id=activity.id, venue_id=activity.venue_id, entered_at=entered_at,
                   exited_at=entered_at + timedelta(minutes=minutes), deadline=entered_at + timedelta(hours=8),
                   minutes=minutes, source="staff", status="completed", flags=[])
    db.session.add(stay)
    db.session.flush()
    entry = credit_stay(stay, actor_id=None)
    db.session.commit()
    return entry


def approved_claim(pupil, submitted_by, *, competition="深圳市青少年科技创新大赛", level="city", award="first",
                   work_title="智能垃圾分类机器人", awarded_on=date(2025, 12, 6)):
    """An approved competition claim credited by credits.service.credit_claim."""
    claim = CompetitionClaim(student_id=pupil.id, competition=competition, level=level, award=award,
                             work_title=work_title, work_key=work_title, awarded_on=awarded_on,
                             evidence_name="证书.png", evidence_path="none", evidence_type="image/png",
                             evidence_sha256="0" * 64, status="approved", submitted_by=submitted_by.id)
    db.session.add(claim)
    db.session.flush()
    entry = credit_claim(claim, actor_id=None)
    db.session.commit()
    return entry


@pytest.fixture
def school(ctx):
    """Grade-5 class 五(1)班 with 王小明 (credits of three kinds and an award) and 李华 (one lecture),
    their accounts, a guardian of 王小明, the class teacher, the school admin, and outsiders."""
    district = f.district()
    home = f.school(district, name="深圳市福田区实验小学")
    klass = f.school_class(home, grade=5, name="五(1)班")
    other_class = f.school_class(home, grade=8, name="八(2)班")
    ming = f.student(klass, name="王小明", number="2025001")
    hua = f.student(klass, name="李华", number="2025002")
    older = f.student(other_class, name="陈静", number="2022010")
    museum = f.venue(district, kind="science_museum", level="city", name="深圳科技馆")
    base = f.venue(district, kind="science_base", level="provincial", name="国家超级计算深圳中心")
    lecture = f.activity(museum, kind="lecture", title="火星探测科普讲座", starts_at=TERM1, ends_at=TERM1 + timedelta(hours=8))
    workshop = f.activity(base, kind="workshop", title="超级计算机动手实验", starts_at=TERM2,
                          ends_at=TERM2 + timedelta(hours=8))
    visit = f.activity(museum, kind="visit", title="常设展厅参观", starts_at=TERM1, ends_at=TERM1 + timedelta(hours=8))
    admin = f.user("school_admin", school_=home)
    credited_stay(ming, lecture, TERM1, 60)            # 1.00
    credited_stay(ming, visit, TERM1 + timedelta(days=1), 90)  # 3 × 0.5 = 1.50
    credited_stay(ming, workshop, TERM2, 90)           # 1.5 × 1.2 = 1.80
    approved_claim(ming, admin)                        # city first prize: 3.00
    credited_stay(hua, lecture, TERM1, 50)             # 1.00
    return {
        "school": home, "class": klass, "other_class": other_class, "ming": ming, "hua": hua, "older": older,
        "lecture": lecture, "workshop": workshop, "visit": visit,
        "student": f.student_user(ming),
        "parent": f.user("guardian", children=[ming]),
        "teacher": f.user("teacher", school_=home, classes=[klass]),
        "admin": admin,
        "other_parent": f.user("guardian", children=[f.student()]),
        "other_admin": f.user("school_admin", school_=f.school(district)),
    }


def get(client, account, url, **kwargs):
    return client.get(url, headers=f.bearer(account), **kwargs)


def post(client, account, url, body):
    headers = f.bearer(account) if account is not None else {}
    return client.post(url, json=body, headers=headers)
