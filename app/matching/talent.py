"""Talent discovery (拔尖创新人才早期发现): pupils whose school year stands out, for their school only.

A pupil is listed when at least one of the SPEC §12 criteria holds for the school year, each with
its evidence:

* `top_credits` — among the school's active pupils of the same grade, their yearly total is in the
  top 5 %: above zero, and no more than ⌈5 % × pupils⌉ pupils of the grade (at least one) have a
  total as high. Pupils tied at a total are listed together or not at all: when ten of thirty
  share the second-best total, that total does not stand out, and none of the ten is listed;
* `award` — an approved competition claim at provincial or national level with a first, second or
  third prize (a participation award does not single a pupil out) awarded in the school year;
* `breadth` — credits in four or more kinds (visit, lecture, workshop, research, volunteer,
  competition) in the school year.

The list is for the school's own personalised cultivation: only a school admin of the school (or
the operator) sees it, every pupil listed is recorded in the audit log as a read of their record,
and it is ordered by grade, class and student number — never ranked.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from decimal import Decimal

from sqlalchemy import select

from app.credits.rules import (
    ACTIVITY_KIND_LABELS,
    AWARD_LABELS,
    LEVEL_LABELS,
    school_year_bounds,
)
from app.extensions import db
from app.orgs.models import School, SchoolClass, Student
from app.reviews.models import CompetitionClaim
from app.transcripts import progress
from app.transcripts.service import check_school_year

TOP_SHARE = Decimal("0.05")
AWARD_LEVELS = ("national", "provincial")
PRIZES = ("first", "second", "third")
BREADTH_KINDS = 4
CRITERIA = {
    "top_credits": "本年级学分前 5%",
    "award": "省级及以上竞赛获奖",
    "breadth": f"参加 {BREADTH_KINDS} 类及以上科普活动",
}


def talent(school: School, school_year: str) -> dict:
    """The pupils of `school` who stand out in `school_year`, each with the evidence of every criterion met."""
    check_school_year(school_year)
    students = db.session.scalars(
        select(Student).where(Student.school_id == school.id, Student.active.is_(True))
    ).all()
    rows = {row["student_id"]: row for row in progress.rows(list(students), school_year)}
    evidence: dict[int, list[dict]] = {}

    by_grade: dict[int, list[Student]] = {}
    for student in students:
        by_grade.setdefault(student.grade, []).append(student)
    for grade, pupils in by_grade.items():
        totals = {p.id: Decimal(rows[p.id]["total"]) for p in pupils}
        ascending = sorted(totals.values())
        share = max(1, math.ceil(len(pupils) * TOP_SHARE))
        # as high or higher: the pupil and everyone tied with or above them
        top = [p for p in pupils
               if totals[p.id] > 0 and len(ascending) - bisect_left(ascending, totals[p.id]) <= share]
        line = min((totals[p.id] for p in top), default=None)
        for pupil in top:
            total = totals[pupil.id]
            evidence.setdefault(pupil.id, []).append({
                "criterion": "top_credits",
                "label": CRITERIA["top_credits"],
                "total": f"{total:.2f}",
                "grade": grade,
                "grade_pupils": len(pupils),
                "line": f"{line:.2f}",
                "detail": f"本学年 {total:.2f} 学分，在本校 {grade} 年级 {len(pupils)} 人中位列前 5%（{line:.2f} 学分及以上）",
            })

    first, last = school_year_bounds(school_year)
    claims = db.session.scalars(
        select(CompetitionClaim)
        .join(Student, Student.id == CompetitionClaim.student_id)
        .where(Student.school_id == school.id, Student.active.is_(True), CompetitionClaim.status == "approved",
               CompetitionClaim.level.in_(AWARD_LEVELS), CompetitionClaim.award.in_(PRIZES),
               CompetitionClaim.awarded_on >= first, CompetitionClaim.awarded_on <= last)
        .order_by(CompetitionClaim.awarded_on, CompetitionClaim.id)
    ).all()
    for claim in claims:
        level, award = LEVEL_LABELS[claim.level], AWARD_LABELS[claim.award]
        evidence.setdefault(claim.student_id, []).append({
            "criterion": "award",
            "label": CRITERIA["award"],
            "claim_id": claim.id,
            "competition": claim.competition,
            "level": claim.level,
            "award": claim.award,
            "work_title": claim.work_title,
            "awarded_on": claim.awarded_on.isoformat(),
            "detail": f"{level}{claim.competition}{award}（作品《{claim.work_title}》，{claim.awarded_on.isoformat()}）",
        })

    for student in students:
        kinds = rows[student.id]["kinds"]
        if len(kinds) >= BREADTH_KINDS:
            words = "、".join(ACTIVITY_KIND_LABELS[k] for k in kinds)
            evidence.setdefault(student.id, []).append({
                "criterion": "breadth",
                "label": CRITERIA["breadth"],
                "kinds": list(kinds),
                "detail": f"本学年在 {len(kinds)} 类活动中获得学分：{words}",
            })

    listed = [s for s in students if s.id in evidence]
    classes = dict(db.session.execute(
        select(SchoolClass.id, SchoolClass.name).where(SchoolClass.id.in_({s.class_id for s in listed}))
    ).all())
    listed.sort(key=lambda s: (s.grade, classes.get(s.class_id, ""), s.student_number))
    items = []
    for student in listed:
        order = {name: n for n, name in enumerate(CRITERIA)}
        proofs = sorted(evidence[student.id], key=lambda e: order[e["criterion"]])
        items.append({
            "student_id": student.id,
            "name": student.name,
            "student_number": student.student_number,
            "grade": student.grade,
            "class_id": student.class_id,
            "class_name": classes.get(student.class_id),
            "total": rows[student.id]["total"],
            "kinds": rows[student.id]["kinds"],
            "criteria": list(dict.fromkeys(e["criterion"] for e in proofs)),
            "evidence": proofs,
        })
    return {
        "school_id": school.id,
        "school_name": school.name,
        "school_year": school_year,
        "criteria": [{"code": code, "label": label} for code, label in CRITERIA.items()],
        "pupils_considered": len(students),
        "items": items,
    }
