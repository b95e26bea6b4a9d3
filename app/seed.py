"""The demo city (`flask seed-demo`): districts, schools, pupils, venues, a week of activities,
one account per role, and a few weeks of history that went through the real scan pipeline.

Everything here is fictional demo data (names are drawn from surname and given-name lists with
``random.Random(2025)``; venue addresses and coordinates are plausible spots in Shenzhen, not facts).

Decisions written down here, as SPEC asks:

* **Idempotent.** Every object is looked up by its natural key before it is created (district code,
  school name, class name within the school, student number within the school, username, venue
  name, activity venue + title + start). Every historical scan carries a deterministic nonce
  (uuid5) and a stable body, so sending it again through ``checkins.service.scan`` is a replay
  (same actor, same nonce), a no-op; a second run goes one step further and skips the scans whose
  (actor, nonce) is already recorded, which is the same answer without a round trip each. Nothing
  new is written. Existing accounts are never changed (a changed password stays).
* **Anchored history.** The history is computed from the day the demo city was first seeded (the
  ``created_at`` of its first venue), not from today, so running the seed again next week does
  not pile up more credits. The history covers the five weeks before that day's week, clipped to
  the school year that day falls in (credits count per school year; early in September the demo
  therefore has less history).
* **The current week.** Upcoming activities are made for the days around *today* (3 days back to
  7 days ahead, Asia/Shanghai), so a later run adds the new days' activities and the demo always
  has something open to scan; the same day twice adds nothing.
* **Real credits.** Every stay is two staff scans (or a teacher's group check-in on a class trip)
  through ``app.checkins.service.scan`` with ``scanned_at`` in the past and ``now`` a minute later,
  exactly as an offline scanner uploading its records, so each credit is a genuine hash-chained
  ledger entry with its explanation — caps, 0.00 for short stays, 未签退 for forgotten exits and a
  few refused scans included.
* **One password.** Every demo account has the password ``demo1234``; it is hashed once (argon2 is
  deliberately slow) and the hash is shared by the accounts this run creates.
* **Venues close on Mondays** (the campus maker space opens Monday to Saturday); opening hours are
  09:00–17:00 Asia/Shanghai, with sessions inside them.
"""

from __future__ import annotations

import random
import unicodedata
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from flask import current_app
from sqlalchemy import func, select

from app.auth.models import StaffVenue, TeacherClass, User
from app.auth.passwords import hash_password
from app.checkins.models import Checkin, Scan
from app.checkins.service import ScanRequest, expire_all, scan
from app.credits.models import LedgerEntry, RuleVersion
from app.credits.rules import (
    SHANGHAI,
    RuleSet,
    Stay,
    evaluate_stay,
    load_default_rules,
    local_date,
    progress,
    school_year_bounds,
    school_year_of,
    stay_minutes,
)
from app.credits.service import activate_version, active_rules, add_rule_version
from app.db import utcnow
from app.extensions import db
from app.matching.models import Booking
from app.orgs.models import District, GuardianLink, School, SchoolClass, Student
from app.transcripts.service import kind_of
from app.venues import codes
from app.venues.models import Activity, Venue

DEMO_PASSWORD = "demo1234"
RANDOM_SEED = 2025
NONCE_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://kepu-ledger.example/seed-demo")
HISTORY_WEEKS = 5
CURRENT_DAYS_BACK, CURRENT_DAYS_AHEAD = 3, 7
# Student numbers are 入学年份 + 班号 + 座号; the cohort is fixed so numbers never drift between runs.
COHORT_BASE_YEAR = 2027  # grade g entered in September (2027 - g): grade 3 → 2024

# Shares of pupils whose history meets the yearly requirement / falls short of it (the rest have
# none), in pilot and other schools. Each stay is two scans through the whole pipeline: these
# shares are what the seed's running time is made of.
PARTICIPATION = {True: (0.42, 0.33), False: (0.10, 0.30)}

THEMES = ("航天", "人工智能", "生命科学", "海洋", "机器人")
GRADE_WORDS = {1: "一", 2: "二", 3: "三", 4: "四", 5: "五", 6: "六", 7: "七", 8: "八", 9: "九"}
ALL_GRADES = tuple(range(1, 10))

# --- the city --------------------------------------------------------------------------------------

DISTRICTS = (("440304", "福田区"), ("440305", "南山区"))  # GB/T 2260 codes as the natural keys


@dataclass(frozen=True)
class SchoolSpec:
    name: str
    district_code: str
    pilot: bool
    latitude: float
    longitude: float
    grades: tuple[int, ...] = (3, 5, 8)


SCHOOLS = (
    SchoolSpec("深圳市福田区实验学校", "440304", True, 22.5537, 114.0392),
    SchoolSpec("深圳市福田区梅林实验学校", "440304", False, 22.5712, 114.0508),
    SchoolSpec("深圳市南山外国语学校", "440305", True, 22.5317, 113.9288),
)


@dataclass(frozen=True)
class VenueSpec:
    key: str
    name: str
    kind: str
    level: str
    district_code: str
    address: str
    latitude: float
    longitude: float


VENUES = (
    VenueSpec("sci", "深圳科学技术馆", "science_museum", "city", "440304",
              "深圳市福田区上步中路（演示数据）", 22.5437, 114.0962),
    VenueSpec("nature", "深圳自然博物馆", "museum", "provincial", "440305",
              "深圳市南山区深圳湾滨海大道（演示数据）", 22.5183, 113.9446),
    VenueSpec("dji", "大疆企业科技传播馆", "enterprise_hall", "district", "440305",
              "深圳市南山区西丽留仙洞（演示数据）", 22.5866, 113.9521),
    VenueSpec("maker", "深圳市福田区实验学校创客空间", "campus", "district", "440304",
              "深圳市福田区实验学校校内（演示数据）", 22.5539, 114.0395),
)


@dataclass(frozen=True)
class Slot:
    """One activity a venue holds on a given day (its opening hours or one session)."""

    kind: str
    title: str
    theme: str
    start: time
    end: time
    capacity: int | None = None
    grades: tuple[int, ...] = ALL_GRADES


LECTURE_TOPICS = {
    "航天": "中国空间站的一天", "人工智能": "AI 是怎样学习的", "生命科学": "细胞里的工厂",
    "海洋": "万米深潜的奥秘", "机器人": "会走路的仿生机器人",
}


def _theme_of(day: date) -> str:
    return THEMES[day.toordinal() % len(THEMES)]


def program(venue_key: str, day: date) -> list[Slot]:
    """What a venue offers on one day (weekday 0 = Monday); museums close on Mondays."""
    wd, theme = day.weekday(), _theme_of(day)
    out: list[Slot] = []
    if venue_key == "sci" and wd != 0:
        out.append(Slot("visit", f"常设展厅参观 · {theme}主题日", theme, time(9), time(17)))
        if wd in (5, 6):
            out.append(Slot("lecture", f"周末科学家讲座：{LECTURE_TOPICS[theme]}", theme, time(10), time(11, 30),
                            capacity=150))
        if wd in (1, 3, 5):
            out.append(Slot("workshop", f"{theme}动手实验室", theme, time(14), time(16), capacity=30,
                            grades=tuple(range(3, 10))))
    elif venue_key == "nature" and wd != 0:
        nature_theme = "海洋" if day.toordinal() % 2 else "生命科学"
        out.append(Slot("visit", f"自然展厅参观 · {nature_theme}", nature_theme, time(9), time(17)))
        if wd in (2, 6):
            out.append(Slot("lecture", "自然课堂：红树林里的生命", "生命科学", time(14), time(15, 30), capacity=100))
        if wd == 5:
            out.append(Slot("research", "深圳湾红树林与候鸟研学", "海洋", time(9), time(16), capacity=40,
                            grades=tuple(range(5, 10))))
    elif venue_key == "dji" and wd != 0:
        out.append(Slot("visit", "无人机与智能制造展参观", "人工智能", time(9), time(17)))
        if wd in (5, 6):
            out.append(Slot("workshop", "无人机编程工作坊", "机器人", time(10), time(12), capacity=24,
                            grades=tuple(range(5, 10))))
        if wd == 4:
            out.append(Slot("research", "智能制造研学营", "人工智能", time(9), time(16), capacity=40,
                            grades=(7, 8, 9)))
    elif venue_key == "maker" and wd != 6:
        if wd <= 4:
            out.append(Slot("workshop", "创客空间 · 机器人搭建", "机器人", time(15, 30), time(17), capacity=30,
                            grades=tuple(range(3, 10))))
        else:
            out.append(Slot("volunteer", "校园科普志愿讲解", "航天", time(9), time(12), capacity=20,
                            grades=tuple(range(5, 10))))
    return out


# --- names ---------------------------------------------------------------------------------------

SURNAMES = (
    "王王王李李李张张张刘刘陈陈杨杨黄赵吴周徐孙马朱胡郭何林林高罗郑梁谢宋唐许邓冯韩曹曾彭萧蔡潘田董袁于余叶"
    "蒋杜苏魏程吕丁沈任姚卢钟姜崔谭廖范汪陆金石戴贾韦夏邱方侯邹熊孟秦白江薛尹段雷黎史龙陶贺顾毛郝龚邵万钱严赖"
)
GIVEN_FIRST = "子梓浩宇俊嘉思欣雨一若泽皓雅晨佳梦语沐昊诗可芷锦奕睿铭书知安启星明清亦佑晓家文博天志心乐钰"
GIVEN_SECOND = "轩涵怡然杰琪诺汐宇辰阳瑶桐天馨程哲泽远航扬菲安萱彤妍涛源宁悦熙琳霖楠睿凯森言希"


def _name(rng: random.Random) -> str:
    surname = rng.choice(SURNAMES)
    if rng.random() < 0.15:
        return surname + rng.choice(GIVEN_FIRST + GIVEN_SECOND)
    return surname + rng.choice(GIVEN_FIRST) + rng.choice(GIVEN_SECOND)


@dataclass
class PupilSpec:
    school: int  # index into SCHOOLS
    grade: int
    class_name: str
    number: str
    name: str
    profile: str = "none"  # met | partial | none: how much history the planner gives this pupil
    student_id: int | None = None


def class_name(grade: int, class_no: int = 1) -> str:
    return f"{GRADE_WORDS[grade]}年级({class_no})班"


def _pupils(rng: random.Random) -> list[PupilSpec]:
    """Every pupil of the demo city, in a fixed order (the random stream never depends on the DB)."""
    pupils: list[PupilSpec] = []
    for s_idx, spec in enumerate(SCHOOLS):
        for grade in spec.grades:
            size = rng.randint(28, 33)
            seen: set[str] = set()
            for seat in range(1, size + 1):
                name = _name(rng)
                while name in seen:
                    name = _name(rng)
                seen.add(name)
                number = f"{COHORT_BASE_YEAR - grade}01{seat:02d}"
                pupils.append(PupilSpec(s_idx, grade, class_name(grade), number, name))
    for pupil in pupils:
        met_share, partial_share = PARTICIPATION[SCHOOLS[pupil.school].pilot]
        r = rng.random()
        pupil.profile = "met" if r < met_share else "partial" if r < met_share + partial_share else "none"
    # The demo family: two siblings at the first school, in the demo teacher's two classes.
    elder, younger = _find(pupils, 0, 5, 1), _find(pupils, 0, 3, 1)
    younger.name = elder.name[0] + younger.name[1:]
    younger.profile, elder.profile = "met", "partial"
    _find(pupils, 2, 8, 1).profile = "met"
    return pupils


def _find(pupils: list[PupilSpec], school: int, grade: int, seat: int) -> PupilSpec:
    number = f"{COHORT_BASE_YEAR - grade}01{seat:02d}"
    return next(p for p in pupils if p.school == school and p.grade == grade and p.number == number)


# --- accounts --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AccountSpec:
    username: str
    role: str
    display_name: str


# --- the plan of past stays ----------------------------------------------------------------------


@dataclass
class PlannedStay:
    pupil: PupilSpec
    venue: str
    day: date
    slot: Slot
    entered_at: datetime
    exited_at: datetime | None  # None: the pupil forgot to sign out (未签退)
    source: str = "staff"  # staff | group (a teacher's class trip)
    refused: bool = False  # a scan the pipeline refuses (here: a grade the activity is not for)


@dataclass
class Plan:
    stays: list[PlannedStay] = field(default_factory=list)


def _local(day: date, at: time, *, minutes: int = 0, seconds: int = 0) -> datetime:
    return datetime.combine(day, at, tzinfo=SHANGHAI) + timedelta(minutes=minutes, seconds=seconds)


def history_days(anchor_day: date) -> list[date]:
    """The five weeks before the anchor's week, clipped to the anchor's school year."""
    first = anchor_day - timedelta(days=CURRENT_DAYS_BACK + 7 * HISTORY_WEEKS)
    last = anchor_day - timedelta(days=CURRENT_DAYS_BACK + 1)
    year_start = school_year_bounds(school_year_of(anchor_day))[0]
    first = max(first, year_start)
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def current_days(today: date) -> list[date]:
    return [today + timedelta(days=n) for n in range(-CURRENT_DAYS_BACK, CURRENT_DAYS_AHEAD + 1)]


def _times(rng: random.Random, slot: Slot, day: date, profile: str) -> tuple[datetime, datetime]:
    """Entry and exit of one stay, inside the slot's hours (seconds included, as real scans)."""
    start = _local(day, slot.start)
    end = _local(day, slot.end)
    if slot.kind == "visit":
        entered = _local(day, time(9), minutes=10 * rng.randint(0, 30), seconds=rng.randint(0, 59))
        choices = (125, 140, 160) if profile == "met" else (40, 70, 100, 130)
        exited = entered + timedelta(minutes=rng.choice(choices), seconds=rng.randint(0, 59))
    elif slot.kind == "research":
        entered = start + timedelta(minutes=rng.randint(0, 15), seconds=rng.randint(0, 59))
        exited = entered + timedelta(minutes=rng.randint(200, 300))
    elif slot.kind == "volunteer":
        entered = start + timedelta(minutes=rng.randint(0, 10), seconds=rng.randint(0, 59))
        exited = entered + timedelta(minutes=rng.randint(125, 165))
    else:  # lecture, workshop: the whole slot, give or take a few minutes
        entered = start + timedelta(minutes=rng.randint(0, 8), seconds=rng.randint(0, 59))
        exited = end - timedelta(minutes=rng.randint(1, 8), seconds=rng.randint(0, 59))
    return entered, min(exited, end - timedelta(seconds=1))


class _Planner:
    """Decides, from the random stream alone, which pupil was where in the history weeks."""

    def __init__(self, rng: random.Random, rules: RuleSet, days: list[date]):
        self.rng, self.rules, self.days = rng, rules, days
        self.venues = {v.key: v for v in VENUES}
        self.programs = {(v.key, day): program(v.key, day) for v in VENUES for day in days}
        self.seats: Counter = Counter()
        self.plan = Plan()

    def _estimate(self, venue_key: str, slot: Slot, entered: datetime, exited: datetime) -> Decimal:
        venue = self.venues[venue_key]
        stay = Stay(activity_kind=slot.kind, venue_kind=venue.kind, venue_level=venue.level,
                    minutes=stay_minutes(entered, exited))
        return evaluate_stay(self.rules, stay).amount

    def _typical(self, venue_key: str, kind: str) -> float:
        """Roughly what one stay of this kind at this venue earns (a weight for the planner)."""
        venue = self.venues[venue_key]
        minutes = {"visit": 130, "research": 240, "volunteer": 150}.get(kind, 90)
        stay = Stay(activity_kind=kind, venue_kind=venue.kind, venue_level=venue.level, minutes=minutes)
        return float(evaluate_stay(self.rules, stay).amount)

    def _options(self, grade: int) -> list[tuple[str, str]]:
        seen = []
        for (venue_key, _), slots in self.programs.items():
            for slot in slots:
                if grade in slot.grades and (venue_key, slot.kind) not in seen:
                    seen.append((venue_key, slot.kind))
        return seen

    def _slots(self, venue_key: str, kind: str, grade: int, used: set[date]) -> list[tuple[date, Slot]]:
        out = []
        for day in self.days:
            if day in used:
                continue
            for slot in self.programs[(venue_key, day)]:
                full = slot.capacity is not None and self.seats[(venue_key, day, slot.title)] >= slot.capacity
                if slot.kind == kind and grade in slot.grades and not full:
                    out.append((day, slot))
        return out

    def class_trip(self, pupils: list[PupilSpec], weekday: int, week: int) -> None:
        """A teacher takes a whole class to the science museum's permanent exhibition (group check-in)."""
        days = [d for d in self.days if d.weekday() == weekday]
        if not days:
            return
        day = days[min(week, len(days) - 1)]
        slot = next(s for s in self.programs[("sci", day)] if s.kind == "visit")
        for pupil in pupils:
            entered = _local(day, time(9, 30), seconds=self.rng.randint(0, 59))
            exited = _local(day, time(11, 40), seconds=self.rng.randint(0, 59))
            self.plan.stays.append(PlannedStay(pupil, "sci", day, slot, entered, exited, source="group"))

    def pupil(self, pupil: PupilSpec) -> None:
        """Add stays for one pupil until the profile's target is reached."""
        rng, rules = self.rng, self.rules
        requirement = rules.requirements[pupil.grade]
        mine = [s for s in self.plan.stays if s.pupil is pupil]
        used = {s.day for s in mine}
        per_venue = Counter(s.venue for s in mine)
        kinds = {s.slot.kind for s in mine}
        total = sum((self._estimate(s.venue, s.slot, s.entered_at, s.exited_at) for s in mine), Decimal(0))
        if pupil.profile == "met":
            target = requirement.credits * Decimal(rng.randint(100, 112)) / 100
        elif pupil.profile == "partial":
            target = requirement.credits * Decimal(rng.randint(15, 50)) / 100
        else:
            target = Decimal(0)
        options = self._options(pupil.grade)
        for _ in range(14):
            need_one_of = pupil.profile == "met" and requirement.one_of and not kinds & set(requirement.one_of)
            need_kinds = pupil.profile == "met" and len(kinds) < requirement.min_kinds
            if total >= target and not need_one_of and not need_kinds:
                break
            pool = [o for o in options if per_venue[o[0]] < 3]
            if need_one_of:
                pool = [o for o in pool if o[1] in requirement.one_of] or pool
            elif need_kinds:
                pool = [o for o in pool if o[1] not in kinds] or pool
            if not pool:
                break
            if pupil.profile == "met":  # a keen pupil goes for the longer, richer activities
                venue_key, kind = rng.choices(pool, weights=[self._typical(*o) ** 2 for o in pool])[0]
            else:
                venue_key, kind = rng.choice(pool)
            slots = self._slots(venue_key, kind, pupil.grade, used)
            if not slots:
                options.remove((venue_key, kind))
                continue
            day, slot = rng.choice(slots)
            entered, exited = _times(rng, slot, day, pupil.profile)
            amount = self._estimate(venue_key, slot, entered, exited)
            if pupil.profile == "partial" and total + amount >= requirement.credits:
                break  # a "partial" pupil stays short of the requirement
            if pupil.profile == "partial" and rng.random() < 0.1:
                exited = None  # forgot to sign out: 未签退, no credit
            elif pupil.profile == "partial" and kind == "visit" and rng.random() < 0.15:
                exited = entered + timedelta(minutes=rng.randint(12, 25))  # too short: 0.00, and it says so
            stay = PlannedStay(pupil, venue_key, day, slot, entered, exited)
            self.plan.stays.append(stay)
            self.seats[(venue_key, day, slot.title)] += 1
            used.add(day)
            per_venue[venue_key] += 1
            if exited is not None:
                kinds.add(kind)
                total += self._estimate(venue_key, slot, entered, exited)
        if pupil.profile == "met" and per_venue["sci"] >= 3 and rng.random() < 0.5:
            self._extra_visit(pupil, used)  # a fourth stay at one venue this term: capped to 0.00
        if pupil.grade in (3, 4) and pupil.profile != "none" and rng.random() < 0.1:
            self._refused_attempt(pupil, used)

    def _extra_visit(self, pupil: PupilSpec, used: set[date]) -> None:
        slots = self._slots("sci", "visit", pupil.grade, used)
        if slots:
            day, slot = self.rng.choice(slots)
            entered, exited = _times(self.rng, slot, day, "met")
            self.plan.stays.append(PlannedStay(pupil, "sci", day, slot, entered, exited))
            used.add(day)

    def _refused_attempt(self, pupil: PupilSpec, used: set[date]) -> None:
        """A younger pupil tries the drone workshop (grades 5–9): the scan is refused, not_eligible."""
        slots = [(d, s) for d in self.days for s in self.programs[("dji", d)] if s.kind == "workshop" and d not in used]
        if slots:
            day, slot = self.rng.choice(slots)
            entered = _local(day, slot.start, minutes=2, seconds=self.rng.randint(0, 59))
            self.plan.stays.append(PlannedStay(pupil, "dji", day, slot, entered, None, refused=True))


# --- the seed ------------------------------------------------------------------------------------


@dataclass
class _Tally:
    created: Counter = field(default_factory=Counter)
    scans: Counter = field(default_factory=Counter)


def seed_demo(echo: Callable[[str], object], *, now: datetime | None = None) -> dict:
    """Create (or complete) the demo city, replay its history through the scan pipeline, commit, and
    print the demo logins; returns the counts it printed. Safe to run again: nothing is duplicated."""
    now = now or utcnow()
    tally = _Tally()
    rng = random.Random(RANDOM_SEED)
    pupils = _pupils(rng)
    teacher_name, parent_word = _name(rng), rng.choice(("爸爸", "妈妈"))
    _ensure_rules(tally)

    districts = _ensure_districts(tally)
    schools = _ensure_schools(districts, tally)
    classes = _ensure_classes(schools, tally)
    students = _ensure_students(pupils, schools, classes, tally)
    venues, anchor = _ensure_venues(districts, now, tally)
    anchor_day, today = local_date(anchor), local_date(now)
    days = history_days(anchor_day)
    activities = _ensure_activities(venues, sorted(set(days) | set(current_days(today))), tally)

    elder, younger = _find(pupils, 0, 5, 1), _find(pupils, 0, 3, 1)
    nanshan_pupil = _find(pupils, 2, 8, 1)
    first_school = schools[0]
    teacher_classes = [classes[(0, class_name(3))], classes[(0, class_name(5))]]
    accounts = _ensure_users(
        [
            (AccountSpec("admin", "admin", "系统管理员"), {}),
            (AccountSpec("city", "city_officer", "深圳市教育局 科普办"), {}),
            (AccountSpec("futian", "district_officer", "福田区教育局"),
             {"district_id": districts["440304"].id}),
            (AccountSpec("school_admin", "school_admin", f"{first_school.name} 教务处"),
             {"school_id": first_school.id}),
            (AccountSpec("teacher", "teacher", f"{teacher_name}老师"),
             {"school_id": first_school.id, "classes": teacher_classes}),
            (AccountSpec("venue", "venue_staff", "深圳科学技术馆 工作人员"),
             {"venues": [venues["sci"], venues["dji"]]}),
            (AccountSpec("parent", "guardian", f"{elder.name}、{younger.name}的{parent_word}"),
             {"children": [elder.student_id, younger.student_id]}),
            (AccountSpec("student", "student", elder.name),
             {"student_id": elder.student_id, "school_id": first_school.id}),
            (AccountSpec("venue2", "venue_staff", "深圳自然博物馆 工作人员"),
             {"venues": [venues["nature"], venues["maker"]]}),
            (AccountSpec("parent2", "guardian", f"{nanshan_pupil.name}的家长"),
             {"children": [nanshan_pupil.student_id]}),
            (AccountSpec("student2", "student", nanshan_pupil.name),
             {"student_id": nanshan_pupil.student_id, "school_id": schools[2].id}),
        ],
        tally,
    )
    report_ids = {
        "class": teacher_classes[0].id,
        "student": students[(0, elder.number)],
        "activity": _next_activity(activities, venues["sci"].id, now),
    }
    db.session.commit()  # the city first: a booking the service refuses rolls back only itself
    _ensure_bookings(activities, accounts, teacher_classes[1], db.session.get(Student, students[(0, younger.number)]),
                     now, tally)
    roles = {username: user.role for username, user in accounts.items()}
    activity_ids = {key: activity.id for key, activity in activities.items()}
    db.session.commit()
    # The scans below commit one by one; a slot holding the whole city would expire (and
    # reload) all of it at every commit. The actors are kept loaded but detached.
    for user in accounts.values():
        db.session.refresh(user)
    db.session.expunge_all()
    staff_of = {"sci": accounts["venue"], "dji": accounts["venue"], "nature": accounts["venue2"],
                "maker": accounts["venue2"]}
    plan = _plan(rng, days, pupils)
    _replay_history(plan, activity_ids, staff_of, accounts["teacher"], students, tally)
    tally.scans["expired"] += expire_all(now)
    db.session.commit()

    counts = _counts(school_year_of(today))
    _report(echo, roles, counts, tally, report_ids)
    return counts


def _ensure_bookings(activities: dict[tuple, Activity], accounts: dict[str, User], trip_class: SchoolClass,
                     child: Student, now: datetime, tally: _Tally) -> None:
    """Two bookings through app.matching.bookings, so capacity counts them: the demo teacher's class
    trip to the next lecture and the demo parent's seat for the younger child at the next workshop
    open to their grade, both at least a day ahead. The class or the child already holding a live
    booking of an activity not yet over is left as it is (so a run on a later day books nothing
    new while the first bookings are ahead); a booking the service refuses (say, the lecture was
    filled meanwhile) is skipped: the demo city does not need it."""
    from app.errors import APIError
    from app.matching import bookings

    ahead = sorted((a for a in activities.values() if a.starts_at > now + timedelta(days=1) and a.capacity),
                   key=lambda a: (a.starts_at, a.id))
    pupils = db.session.scalar(select(func.count(Student.id)).where(Student.class_id == trip_class.id,
                                                                   Student.active.is_(True)))
    trip = next((a for a in ahead if a.kind == "lecture" and trip_class.grade in a.grades and a.capacity >= pupils),
                None)
    seat = next((a for a in ahead if a.kind == "workshop" and child.grade in a.grades), None)
    for activity, holder, book in (
        (trip, (Booking.kind == "class") & (Booking.class_id == trip_class.id),
         lambda a: bookings.book_class(actor=accounts["teacher"], activity=a, klass=trip_class, seats=pupils,
                                       note="班级科普研学", now=now)),
        (seat, Booking.student_id == child.id,
         lambda a: bookings.book_student(actor=accounts["parent"], activity=a, student=child, now=now)),
    ):
        if activity is None or db.session.scalar(
                select(Booking.id).join(Activity, Activity.id == Booking.activity_id)
                .where(holder, Booking.status.in_(bookings.LIVE), Activity.ends_at > now).limit(1)):
            continue
        try:
            book(activity)
        except APIError:
            db.session.rollback()
            continue
        tally.created["bookings"] += 1


def _next_activity(activities: dict[tuple, Activity], venue_id: int, now: datetime) -> int:
    """The science museum's activity open now or next (for the "what to try" column)."""
    ahead = sorted(
        (a for a in activities.values() if a.venue_id == venue_id and a.ends_at > now),
        key=lambda a: (a.starts_at, a.id),
    )
    return (ahead or sorted(activities.values(), key=lambda a: a.starts_at))[0].id


def _ensure_rules(tally: _Tally) -> None:
    """A database without an active rule set (a hand-made one) gets the default sz-2025 activated."""
    if db.session.scalar(select(RuleVersion.version).where(RuleVersion.active.is_(True))) is not None:
        return
    default = load_default_rules()
    row = db.session.get(RuleVersion, default.version)
    if row is None:
        add_rule_version(default.document, activate=True)
    else:
        activate_version(row)
    tally.created["rule_versions"] += 1
    db.session.flush()


def _ensure_districts(tally: _Tally) -> dict[str, District]:
    out = {}
    for code, name in DISTRICTS:
        district = db.session.scalar(select(District).where(District.code == code))
        if district is None:
            district = District(code=code, name=name)
            db.session.add(district)
            tally.created["districts"] += 1
        out[code] = district
    db.session.flush()
    return out


def _ensure_schools(districts: dict[str, District], tally: _Tally) -> list[School]:
    out = []
    for spec in SCHOOLS:
        district = districts[spec.district_code]
        school = db.session.scalar(
            select(School).where(School.name == spec.name, School.district_id == district.id).order_by(School.id)
        )
        if school is None:
            school = School(name=spec.name, district_id=district.id, pilot=spec.pilot, latitude=spec.latitude,
                            longitude=spec.longitude)
            db.session.add(school)
            tally.created["schools"] += 1
        out.append(school)
    db.session.flush()
    return out


def _ensure_classes(schools: list[School], tally: _Tally) -> dict[tuple[int, str], SchoolClass]:
    out = {}
    for s_idx, (spec, school) in enumerate(zip(SCHOOLS, schools, strict=True)):
        existing = {c.name: c for c in db.session.scalars(select(SchoolClass).where(SchoolClass.school_id == school.id))}
        for grade in spec.grades:
            name = class_name(grade)
            klass = existing.get(name)
            if klass is None:
                klass = SchoolClass(school_id=school.id, grade=grade, name=name)
                db.session.add(klass)
                tally.created["classes"] += 1
            out[(s_idx, name)] = klass
    db.session.flush()
    return out


def _ensure_students(pupils: list[PupilSpec], schools: list[School], classes: dict, tally: _Tally
                     ) -> dict[tuple[int, str], int]:
    """Student ids by (school index, student number); a pupil already on the roll is left as it is."""
    existing: dict[tuple[int, str], Student] = {}
    for s_idx, school in enumerate(schools):
        for student in db.session.scalars(select(Student).where(Student.school_id == school.id)):
            existing[(s_idx, student.student_number)] = student
    for pupil in pupils:
        student = existing.get((pupil.school, pupil.number))
        if student is None:
            klass = classes[(pupil.school, pupil.class_name)]
            student = Student(school_id=schools[pupil.school].id, class_id=klass.id, grade=klass.grade,
                              student_number=pupil.number, name=pupil.name, active=True, pass_version=1)
            db.session.add(student)
            existing[(pupil.school, pupil.number)] = student
            tally.created["students"] += 1
    db.session.flush()
    for pupil in pupils:
        pupil.student_id = existing[(pupil.school, pupil.number)].id
    return {key: student.id for key, student in existing.items()}


def _ensure_venues(districts: dict[str, District], now: datetime, tally: _Tally) -> tuple[dict[str, Venue], datetime]:
    """The four venues, and the anchor of the history: when the first demo venue was created."""
    out = {}
    for spec in VENUES:
        venue = db.session.scalar(select(Venue).where(Venue.name == spec.name).order_by(Venue.id))
        if venue is None:
            venue = Venue(name=spec.name, kind=spec.kind, level=spec.level,
                          district_id=districts[spec.district_code].id, address=spec.address,
                          latitude=spec.latitude, longitude=spec.longitude, active=True, created_at=now)
            db.session.add(venue)
            tally.created["venues"] += 1
        out[spec.key] = venue
    db.session.flush()
    anchor = out[VENUES[0].key].created_at or now
    return out, min(anchor, now)


def _ensure_activities(venues: dict[str, Venue], days: list[date], tally: _Tally) -> dict[tuple, Activity]:
    """Activities by (venue key, title, local start) for every programme day given."""
    rules = active_rules()
    by_id = {v.id: key for key, v in venues.items()}
    existing = {
        (by_id[a.venue_id], a.title, a.starts_at): a
        for a in db.session.scalars(select(Activity).where(Activity.venue_id.in_(by_id)))
    }
    out = {}
    for key, venue in venues.items():
        for day in days:
            for slot in program(key, day):
                starts_at = _local(day, slot.start)
                activity = existing.get((key, slot.title, starts_at))
                if activity is None:
                    activity = Activity(
                        venue_id=venue.id, kind=slot.kind, title=slot.title, theme=slot.theme,
                        starts_at=starts_at, ends_at=_local(day, slot.end),
                        min_minutes=rules.kinds[slot.kind].min_minutes, capacity=slot.capacity,
                        grades=list(slot.grades),
                    )
                    db.session.add(activity)
                    tally.created["activities"] += 1
                out[(key, slot.title, starts_at)] = activity
    db.session.flush()
    return out


def _ensure_users(specs: list[tuple[AccountSpec, dict]], tally: _Tally) -> dict[str, User]:
    """The demo accounts (password demo1234, hashed once); their class, venue and child links."""
    password_hash = None
    out = {}
    for spec, scope in specs:
        user = db.session.scalar(select(User).where(User.username == spec.username))
        if user is None:
            password_hash = password_hash or hash_password(DEMO_PASSWORD)
            student_id = scope.get("student_id")
            if student_id is not None and db.session.scalar(select(User.id).where(User.student_id == student_id)):
                continue  # that pupil already has an account of its own
            user = User(username=spec.username, password_hash=password_hash, role=spec.role,
                        display_name=spec.display_name, active=True, student_id=student_id,
                        school_id=scope.get("school_id"), district_id=scope.get("district_id"))
            db.session.add(user)
            db.session.flush()
            tally.created["users"] += 1
        if user.role != spec.role:
            raise RuntimeError(f"用户名 {spec.username} 已被角色 {user.role} 的账号占用，演示城市需要它作为 {spec.role}。")
        out[spec.username] = user
        links = (
            [TeacherClass(user_id=user.id, class_id=c.id) for c in scope.get("classes", ())]
            + [StaffVenue(user_id=user.id, venue_id=v.id) for v in scope.get("venues", ())]
            + [GuardianLink(guardian_id=user.id, student_id=s) for s in scope.get("children", ())]
        )
        for link in links:
            key = tuple(getattr(link, col.key) for col in link.__mapper__.primary_key)
            if db.session.get(type(link), key) is None:
                db.session.add(link)
                tally.created["links"] += 1
    db.session.flush()
    return out


def _plan(rng: random.Random, days: list[date], pupils: list[PupilSpec]) -> Plan:
    planner = _Planner(rng, load_default_rules(), days)
    for grade, weekday, week in ((3, 3, 1), (5, 1, 2)):  # the demo teacher's two class trips
        planner.class_trip([p for p in pupils if p.school == 0 and p.grade == grade], weekday, week)
    for pupil in pupils:
        planner.pupil(pupil)
    return planner.plan


def _nonce(stay: PlannedStay, direction: str) -> str:
    pupil = stay.pupil
    key = f"{SCHOOLS[pupil.school].name}|{pupil.number}|{stay.venue}|{stay.slot.title}|{stay.day}|{direction}"
    return str(uuid.uuid5(NONCE_NAMESPACE, key))


def _replay_history(plan: Plan, activity_ids: dict, staff_of: dict[str, User], teacher: User, students: dict,
                    tally: _Tally) -> None:
    """Send every planned scan through the real pipeline, oldest first, as an offline device uploads."""
    events = []
    for stay in plan.stays:
        events.append((stay.entered_at, 0, stay, "entry"))
        if stay.exited_at is not None:
            events.append((stay.exited_at, 1, stay, "exit"))
    events.sort(key=lambda e: (e[0], e[1], e[2].pupil.school, e[2].pupil.number))
    versions = dict(db.session.execute(select(Student.id, Student.pass_version)).all())
    actors = {u.id for u in (*staff_of.values(), teacher)}
    recorded = set(db.session.execute(select(Scan.actor_id, Scan.nonce).where(Scan.actor_id.in_(actors))).all())
    passes: dict[int, str] = {}
    for when, _, stay, direction in events:
        actor = teacher if stay.source == "group" else staff_of[stay.venue]
        nonce = _nonce(stay, direction)
        if (actor.id, nonce) in recorded:
            # Already recorded by an earlier run: scan() would replay the stored answer (same actor,
            # same nonce, same body), a no-op; skipping it is the same answer without the round trip.
            tally.scans["replayed"] += 1
            continue
        activity_id = activity_ids[(stay.venue, stay.slot.title, _local(stay.day, stay.slot.start))]
        student_id = students[(stay.pupil.school, stay.pupil.number)]
        # The body is what the hash of a replay is compared with: stable, without the signed pass.
        body = {"activity_id": activity_id, "direction": direction, "nonce": nonce,
                "scanned_at": when.isoformat(), "student_id": student_id}
        if stay.source == "group":
            req = ScanRequest(actor=teacher, source="group", student_id=student_id, activity_id=activity_id,
                              direction=direction, nonce=nonce, scanned_at=when, body={"group": True, **body})
        else:
            if student_id not in passes:
                passes[student_id] = codes.student_pass(student_id, versions[student_id])
            req = ScanRequest(actor=staff_of[stay.venue], source="staff", student_pass=passes[student_id],
                              activity_id=activity_id, direction=direction, nonce=nonce, scanned_at=when,
                              device_id=f"demo-scanner-{stay.venue}", body=body)
        result = scan(req, now=when + timedelta(minutes=1))
        db.session.expunge_all()
        if result.replayed:
            tally.scans["replayed"] += 1
        elif result.status == 201:
            tally.scans["accepted"] += 1
        else:
            tally.scans["refused"] += 1


def _counts(school_year: str) -> dict:
    """What the demo city holds now, and how many pupils meet this school year's requirement."""
    rules = active_rules()

    def count(model) -> int:
        return db.session.scalar(select(func.count()).select_from(model))

    by_student: dict[int, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for entry in db.session.scalars(select(LedgerEntry).where(LedgerEntry.school_year == school_year)):
        kind = kind_of(entry)
        if kind != "other":
            by_student[entry.student_id][kind] += entry.amount
    met = 0
    students = db.session.execute(select(Student.id, Student.grade).where(Student.active.is_(True))).all()
    for student_id, grade in students:
        if progress(rules, grade, by_student.get(student_id, {})).met:
            met += 1
    return {
        "districts": count(District),
        "schools": count(School),
        "classes": count(SchoolClass),
        "students": count(Student),
        "venues": count(Venue),
        "activities": count(Activity),
        "checkins": count(Checkin),
        "ledger_entries": count(LedgerEntry),
        "bookings": count(Booking),
        "users": count(User),
        "school_year": school_year,
        "students_meeting_requirement": met,
        "active_students": len(students),
    }


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int) -> str:
    return text + " " * max(width - _width(text), 0)


def _report(echo, roles: dict[str, str], counts: dict, tally: _Tally, ids: dict) -> None:
    base = current_app.config.get("PUBLIC_BASE_URL", "http://127.0.0.1:5000").rstrip("/")
    klass, student_id, act = ids["class"], ids["student"], ids["activity"]
    tries = {
        "admin": "GET /api/v1/users ; POST /api/v1/rules/{version}/simulate",
        "city": "GET /api/v1/stats/credits?group_by=district（只见汇总，不见学生）",
        "futian": "GET /api/v1/stats/credits?group_by=school（仅福田区）",
        "school_admin": f"GET /api/v1/classes/{klass}/progress ; POST /api/v1/students/{student_id}/guardian-invites",
        "teacher": f"GET /api/v1/classes/{klass}/progress ; POST /api/v1/activities/{act}/group-checkins",
        "venue": f"GET /api/v1/activities/{act}/code?direction=entry ; POST /api/v1/checkins with a student_pass",
        "parent": "GET /api/v1/me/children ; POST /api/v1/checkins {code, student_id}",
        "student": f"POST /api/v1/checkins with a venue code ; GET /api/v1/students/{student_id}/transcript",
        "venue2": "深圳自然博物馆、创客空间的工作人员 staff of the other two venues",
        "parent2": "南山外国语学校一名八年级学生的家长 a Nanshan grade-8 pupil's parent",
        "student2": "南山外国语学校八年级学生 that grade-8 pupil",
    }
    created = ", ".join(f"{n} {k}" for k, n in sorted(tally.created.items())) or "nothing new 无新增"
    scans = tally.scans
    echo("科普教育学分制 · 演示城市 demo city (seed-demo)")
    echo(f"  本次新建 created: {created}")
    echo(f"  历史扫描 history scans: {scans['accepted']} accepted, {scans['refused']} refused, "
         f"{scans['replayed']} replayed (no-op), {scans['expired']} stays marked 未签退")
    echo("")
    header = ("角色 role", "用户名 username", "密码 password", "试试看 what to try")
    widths = (28, 18, 15)
    echo("  " + "".join(_pad(h, w) for h, w in zip(header, widths, strict=False)) + header[3])
    for username, role in roles.items():
        label = {
            "admin": "管理员 admin", "city_officer": "市教育局 city_officer",
            "district_officer": "区教育局 district_officer", "school_admin": "学校管理员 school_admin",
            "teacher": "班主任 teacher", "venue_staff": "场馆工作人员 venue_staff", "guardian": "家长 guardian",
            "student": "学生 student",
        }.get(role, role)
        row = (label, username, DEMO_PASSWORD)
        echo("  " + "".join(_pad(c, w) for c, w in zip(row, widths, strict=True)) + tries.get(username, ""))
    echo("")
    echo(f"  API docs: {base}/api/docs   登录 login: POST {base}/api/v1/auth/login "
         f'{{"username": "student", "password": "{DEMO_PASSWORD}"}}')
    echo(f"  统计 counts: {counts['districts']} districts · {counts['schools']} schools · {counts['classes']} classes · "
         f"{counts['students']} students · {counts['venues']} venues · {counts['activities']} activities · "
         f"{counts['checkins']} check-ins · {counts['ledger_entries']} ledger entries · {counts['bookings']} bookings")
    echo(f"  {counts['school_year']} 学年达到年度要求 meeting the yearly requirement: "
         f"{counts['students_meeting_requirement']} / {counts['active_students']} students")
