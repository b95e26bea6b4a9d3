"""Bookings at activities (科普基地预约): seats, the waiting list, attendance and no-shows.

How bookings and walk-ins share an activity's capacity (SPEC §12, decided here):

* seats taken = seats of *confirmed* bookings + walk-ins, where a walk-in is a pupil seated at the
  activity (a check-in `open`, `completed` or `flagged`, as the scan pipeline counts seats) who did
  not come in on a booking. Nothing is ever confirmed, and no walk-in enters, beyond the capacity.
* A booked pupil's entry never answers `activity_full`: the seat was taken when the booking was
  confirmed. The entry is linked to the booking (a `BookingAttendance`): a guardian's booking by
  the child, a class booking by class membership — any pupil of the class takes one of its seats
  until they are all used; a classmate beyond the booked seats enters as a walk-in.
* Every path that takes a seat — a booking, a promotion from the waiting list, a walk-in entry at an
  activity with a capacity — first locks the activity's row (`SELECT … FOR UPDATE`) and then counts
  in a new statement, so the count is never stale and seats never oversell (PostgreSQL; SQLite
  write transactions are serial anyway).
* A guardian's booking of a full activity goes on the waiting list (候补), first come first served
  (the booking id is allocated under the lock, so its order is the order the lock was granted);
  cancelling a confirmed booking promotes the head of the list into the freed seats at once.
  A class booking is confirmed whole or refused (`activity_full` / `not_enough_seats` with the
  seats left): a school plans a trip on a definite answer, and a 40-seat request at the head of a
  queue would block every family behind it.
* A booking may be made and cancelled until the activity ends; once a pupil has come in on it, it
  can no longer be cancelled (the seat was used). After the end, a confirmed booking with fewer
  attendances than seats is a no-show, counted per venue (`no_shows`) — never on the pupil's record.
* At an activity without a capacity, bookings are always confirmed (they still tell the venue who
  is coming) and entries are linked without locking the activity: two classmates entering at the
  same instant may both use a class booking's last seat, which only makes its no-show count 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import distinct, exists, false, func, or_, select, true
from sqlalchemy.exc import IntegrityError

from app.auth.models import User
from app.auth.scope import class_filter, managed_venue_filter, student_filter
from app.checkins.models import Checkin
from app.common import iso
from app.credits.rules import local_day_bounds
from app.db import utcnow
from app.errors import APIError, field_error, not_found
from app.extensions import db
from app.matching.models import STATUS_LABELS, Booking, BookingAttendance
from app.orgs.models import School, SchoolClass, Student
from app.venues.models import Activity, Venue

SEATED = ("open", "completed", "flagged")  # check-in statuses that hold a seat (as the scan pipeline counts)
LIVE = ("confirmed", "waitlisted")

MESSAGES = {
    "booking_closed": "该活动已结束，不能再预约或取消预约。",
    "activity_not_open": "该场馆暂停开放，暂时不能预约。",
    "activity_full": "该活动名额已满，请选择其他场次。",
    "not_enough_seats": "剩余名额不足，请减少预约人数或选择其他场次。",
    "not_eligible": "该活动不面向这个年级，请选择适合的科普活动。",
    "student_inactive": "该学生账号已停用，请联系学校老师。",
    "already_booked": "已经预约过该活动，无需重复预约。",
    "already_checked_in": "该学生已在该活动签到，无需再预约。",
    "booking_in_use": "已有学生凭此预约入场，不能再取消。",
}


def refuse(code: str, http_status: int = 422, **details) -> APIError:
    return APIError(http_status, code, MESSAGES[code], details)


# --- counting seats -------------------------------------------------------------------------------


def booked_seats(activity_id):
    """SQL: seats held by confirmed bookings of an activity (a column or a value)."""
    return (
        select(func.coalesce(func.sum(Booking.seats), 0))
        .where(Booking.activity_id == activity_id, Booking.status == "confirmed")
        .scalar_subquery()
    )


def walk_ins(activity_id):
    """SQL: pupils seated at an activity who did not come in on a booking."""
    booked_in = select(BookingAttendance.student_id).where(BookingAttendance.activity_id == activity_id)
    return (
        select(func.count(distinct(Checkin.student_id)))
        .where(Checkin.activity_id == activity_id, Checkin.status.in_(SEATED), Checkin.student_id.not_in(booked_in))
        .scalar_subquery()
    )


def seated(activity_id, student_id):
    """SQL: the pupil holds a seat at the activity (entered, not marked 未签退 or rejected)."""
    return exists().where(Checkin.activity_id == activity_id, Checkin.student_id == student_id,
                          Checkin.status.in_(SEATED))


def seats_left(capacity: int | None, booked: int, walked_in: int) -> int | None:
    """Seats still free (never negative); None for an activity without a capacity."""
    return None if capacity is None else max(capacity - booked - walked_in, 0)


def lock_activity(activity_id: int) -> None:
    """Row lock on the activity: every path that takes one of its seats queues here."""
    db.session.execute(select(Activity.id).where(Activity.id == activity_id).with_for_update())


def _occupancy(activity: Activity) -> tuple[int, int]:
    booked, walked = db.session.execute(select(booked_seats(activity.id), walk_ins(activity.id))).one()
    return int(booked), int(walked)


# --- the scan pipeline's side: a seat for an entry -----------------------------------------------


@dataclass(frozen=True)
class Seat:
    """What an entry scan may do: use a booking's seat (link it), or walk in — or nothing is left."""

    booking_id: int | None = None
    link: bool = False  # write the attendance (False when this pupil already came in on the booking)
    full: bool = False


def seat_for_entry(activity: Activity, student: Student) -> Seat:
    """The seat an entering pupil takes, in one query (after locking the activity when it has a
    capacity): their own booking, a seat of their class's booking, one already used, or a walk-in."""
    a, s = activity.id, student.id
    own = (
        select(Booking.id)
        .where(Booking.activity_id == a, Booking.status == "confirmed", Booking.student_id == s)
        .limit(1)
        .scalar_subquery()
    )
    used = (
        select(BookingAttendance.booking_id)
        .where(BookingAttendance.activity_id == a, BookingAttendance.student_id == s)
        .limit(1)
        .scalar_subquery()
    )
    attended = select(func.count(BookingAttendance.id)).where(BookingAttendance.booking_id == Booking.id)
    for_class = (
        select(Booking.id)
        .where(Booking.activity_id == a, Booking.status == "confirmed", Booking.class_id == student.class_id,
               Booking.seats > attended.scalar_subquery())
        .order_by(Booking.id)
        .limit(1)
        .scalar_subquery()
    )
    columns = [used, own, for_class]
    if activity.capacity is not None:
        lock_activity(a)
        columns += [seated(a, s), booked_seats(a), walk_ins(a)]
    row = db.session.execute(select(*columns)).one()
    if row[0] is not None:
        return Seat(booking_id=row[0])
    if row[1] is not None or row[2] is not None:
        return Seat(booking_id=row[1] if row[1] is not None else row[2], link=True)
    if activity.capacity is not None:
        is_seated, booked, walked = row[3], row[4], row[5]
        if not is_seated and booked + walked >= activity.capacity:  # coming back in keeps one seat
            return Seat(full=True)
    return Seat()


def link_attendance(seat: Seat, checkin: Checkin) -> None:
    """Record that the pupil of `checkin` came in on the booking of `seat`."""
    if seat.booking_id is None or not seat.link:
        return
    db.session.add(BookingAttendance(booking_id=seat.booking_id, activity_id=checkin.activity_id,
                                     student_id=checkin.student_id, checkin_id=checkin.id))
    db.session.flush()


# --- booking and cancelling -----------------------------------------------------------------------


def _bookable(activity: Activity, now: datetime) -> None:
    if activity.ends_at <= now:
        raise refuse("booking_closed", ends_at=iso(activity.ends_at))
    if not activity.venue.active:
        raise refuse("activity_not_open")


def _eligible(activity: Activity, grade: int) -> None:
    if grade not in (activity.grades or range(1, 10)):
        raise refuse("not_eligible", grade=grade, grades=activity.grades)


def _live_booking(activity_id: int, **target) -> Booking | None:
    (name, value), = target.items()
    return db.session.scalar(
        select(Booking).where(Booking.activity_id == activity_id, Booking.status.in_(LIVE),
                              getattr(Booking, name) == value)
    )


def _save(booking: Booking) -> Booking:
    db.session.add(booking)
    try:
        db.session.flush()
    except IntegrityError:  # the partial unique index: a live booking appeared after all
        db.session.rollback()
        raise refuse("already_booked", 409) from None
    _promote(booking.activity, utcnow())
    db.session.commit()
    return booking


def book_class(*, actor: User, activity: Activity, klass: SchoolClass, seats: int, note: str | None = None,
               now: datetime | None = None) -> Booking:
    """A teacher books `seats` seats for a class trip: confirmed whole, or refused."""
    now = now or utcnow()
    _bookable(activity, now)
    _eligible(activity, klass.grade)
    pupils = db.session.scalar(
        select(func.count(Student.id)).where(Student.class_id == klass.id, Student.active.is_(True))
    )
    if seats > pupils:
        raise field_error("seats", f"该班只有 {pupils} 名在籍学生，预约人数不能超过班级人数。")
    lock_activity(activity.id)
    existing = _live_booking(activity.id, class_id=klass.id)
    if existing is not None:
        raise refuse("already_booked", 409, booking_id=existing.id)
    if activity.capacity is not None:
        left = seats_left(activity.capacity, *_occupancy(activity))
        if seats > left:
            raise refuse("activity_full" if left == 0 else "not_enough_seats", seats_left=left, requested=seats)
    return _save(Booking(activity_id=activity.id, activity=activity, kind="class", class_id=klass.id, seats=seats,
                         status="confirmed", confirmed_at=now, note=note, booked_by=actor.id, created_at=now))


def book_student(*, actor: User, activity: Activity, student: Student, waitlist: bool = True,
                 note: str | None = None, now: datetime | None = None) -> Booking:
    """A guardian books one seat for a child: confirmed while seats are left, else on the waiting list."""
    now = now or utcnow()
    _bookable(activity, now)
    if not student.active:
        raise refuse("student_inactive")
    _eligible(activity, student.grade)
    lock_activity(activity.id)
    existing = _live_booking(activity.id, student_id=student.id)
    if existing is not None:
        raise refuse("already_booked", 409, booking_id=existing.id, status=existing.status)
    if _is_seated(activity.id, student.id):
        raise refuse("already_checked_in")
    status = "confirmed"
    if activity.capacity is not None:
        left = seats_left(activity.capacity, *_occupancy(activity))
        if left < 1 or _waitlist(activity.id):  # nobody jumps the queue
            if not waitlist:
                raise refuse("activity_full", seats_left=left)
            status = "waitlisted"
    return _save(Booking(activity_id=activity.id, activity=activity, kind="guardian", student_id=student.id, seats=1,
                         status=status, confirmed_at=now if status == "confirmed" else None, note=note,
                         booked_by=actor.id, created_at=now))


def _is_seated(activity_id: int, student_id: int) -> bool:
    return bool(db.session.scalar(select(seated(activity_id, student_id))))


def _waitlist(activity_id: int) -> list[Booking]:
    return list(db.session.scalars(
        select(Booking).where(Booking.activity_id == activity_id, Booking.status == "waitlisted").order_by(Booking.id)
    ))


def _promote(activity: Activity, now: datetime) -> list[Booking]:
    """Move the head of the waiting list into free seats (the activity row is locked by the caller)."""
    promoted = []
    if activity.capacity is None:
        waiting = _waitlist(activity.id)  # a capacity was removed: everyone gets in
        left = len(waiting)
    else:
        left = seats_left(activity.capacity, *_occupancy(activity))
        waiting = _waitlist(activity.id) if left else []
    for booking in waiting:
        if left < booking.seats:
            break
        if _is_seated(activity.id, booking.student_id):  # came in as a walk-in meanwhile
            booking.status, booking.cancelled_at, booking.cancel_reason = "cancelled", now, "已入场，候补自动取消"
            continue
        booking.status, booking.confirmed_at = "confirmed", now
        left -= booking.seats
        promoted.append(booking)
    db.session.flush()
    return promoted


def cancel(*, actor: User, booking: Booking, reason: str | None = None,
           now: datetime | None = None) -> tuple[Booking, list[Booking]]:
    """Cancel a booking (idempotent) and promote the waiting list; returns it and those promoted."""
    now = now or utcnow()
    if booking.status == "cancelled":
        return booking, []
    activity = booking.activity
    if activity.ends_at <= now:
        raise refuse("booking_closed", ends_at=iso(activity.ends_at))
    lock_activity(activity.id)
    db.session.refresh(booking)
    if booking.status == "cancelled":
        return booking, []
    if attendance_count(booking.id):
        raise refuse("booking_in_use")
    booking.status, booking.cancelled_at, booking.cancelled_by = "cancelled", now, actor.id
    booking.cancel_reason = reason
    db.session.flush()
    promoted = _promote(activity, now)
    db.session.commit()
    return booking, promoted


def attendance_count(booking_id: int) -> int:
    return db.session.scalar(select(func.count(BookingAttendance.id)).where(BookingAttendance.booking_id == booking_id))


# --- who sees which booking -----------------------------------------------------------------------


def booking_filter(user: User):
    """Bookings `user` may see: their pupils' and classes' (school side), their venues' (venue side)."""
    role = user.role
    if role == "admin":
        return true()
    conditions = []
    if role in ("guardian", "student", "teacher", "school_admin"):
        conditions.append(Booking.student_id.in_(select(Student.id).where(student_filter(user))))
    if role in ("teacher", "school_admin"):
        conditions.append(Booking.class_id.in_(select(SchoolClass.id).where(class_filter(user))))
    if role in ("venue_staff", "city_officer"):
        conditions.append(Booking.activity_id.in_(select(Activity.id).join(Venue).where(managed_venue_filter(user))))
    return or_(*conditions) if conditions else false()


def get_booking(user: User, booking_id: int) -> Booking:
    booking = db.session.scalar(select(Booking).where(Booking.id == booking_id, booking_filter(user)))
    if booking is None:
        raise not_found("预约")
    return booking


def school_side(user: User) -> bool:
    """Whether `user` sees bookings as the pupils' side (names) rather than as the venue (no names)."""
    return user.role in ("guardian", "student", "teacher", "school_admin", "admin")


# --- views ----------------------------------------------------------------------------------------


def waitlist_positions(activity_ids) -> dict[int, int]:
    """Booking id → place on its activity's waiting list (1 = next in)."""
    rows = db.session.execute(
        select(Booking.id, Booking.activity_id)
        .where(Booking.activity_id.in_(set(activity_ids)), Booking.status == "waitlisted")
        .order_by(Booking.activity_id, Booking.id)
    ).all()
    positions, last, n = {}, None, 0
    for booking_id, activity_id in rows:
        n = n + 1 if activity_id == last else 1
        last = activity_id
        positions[booking_id] = n
    return positions


def attendance_counts(booking_ids) -> dict[int, int]:
    ids = set(booking_ids)
    if not ids:
        return {}
    rows = db.session.execute(
        select(BookingAttendance.booking_id, func.count(BookingAttendance.id))
        .where(BookingAttendance.booking_id.in_(ids))
        .group_by(BookingAttendance.booking_id)
    ).all()
    return dict(rows)


def booking_views(bookings: list[Booking], *, names: bool) -> list[dict]:
    """Bookings as the API shows them. `names=False` (the venue's side) leaves out every pupil's
    name and number: a venue sees seats, grades, schools and classes, never who the children are."""
    positions = waitlist_positions(b.activity_id for b in bookings)
    attended = attendance_counts(b.id for b in bookings)
    students = {s.id: s for s in db.session.scalars(
        select(Student).where(Student.id.in_({b.student_id for b in bookings if b.student_id}))
    )}
    classes = {c.id: c for c in db.session.scalars(
        select(SchoolClass).where(SchoolClass.id.in_({b.class_id for b in bookings if b.class_id}))
    )}
    school_ids = {s.school_id for s in students.values()} | {c.school_id for c in classes.values()}
    schools = dict(db.session.execute(select(School.id, School.name).where(School.id.in_(school_ids))).all())
    bookers = dict(db.session.execute(
        select(User.id, User.display_name).where(User.id.in_({b.booked_by for b in bookings}))
    ).all())
    out = []
    for b in bookings:
        activity = b.activity
        pupil, klass = students.get(b.student_id), classes.get(b.class_id)
        # the venue's side sees the school of a class trip, not the school of one named-less child
        school_id = (pupil.school_id if names else None) if pupil else klass.school_id
        view = {
            "id": b.id,
            "kind": b.kind,
            "kind_label": "班级团体预约" if b.kind == "class" else "家长预约",
            "activity_id": b.activity_id,
            "activity_title": activity.title,
            "activity_kind": activity.kind,
            "starts_at": iso(activity.starts_at),
            "ends_at": iso(activity.ends_at),
            "venue_id": activity.venue_id,
            "venue_name": activity.venue.name,
            "seats": b.seats,
            "status": b.status,
            "status_label": STATUS_LABELS[b.status],
            "waitlist_position": positions.get(b.id),
            "attended": attended.get(b.id, 0),
            "school_id": school_id,
            "school_name": schools.get(school_id),
            "grade": pupil.grade if pupil else klass.grade,
            "class_id": b.class_id,
            "class_name": klass.name if klass else None,
            "booked_by_name": bookers.get(b.booked_by) if b.kind == "class" else None,
            "note": b.note,
            "created_at": iso(b.created_at),
            "confirmed_at": iso(b.confirmed_at),
            "cancelled_at": iso(b.cancelled_at),
        }
        if names:
            view["student_id"] = b.student_id
            view["student_name"] = pupil.name if pupil else None
        out.append(view)
    return out


def booking_view(booking: Booking, *, names: bool) -> dict:
    return booking_views([booking], names=names)[0]


def booking_message(booking: Booking, view: dict) -> str:
    """What the booker is told (the API's `message`, the parent's page)."""
    if booking.status == "waitlisted":
        return f"名额已满，已加入候补，排第 {view['waitlist_position']} 位；有人取消时按顺序自动补上。"
    return f"预约成功：{view['activity_title']}，{view['seats']} 个名额。"


def holds_seat_for(student: Student):
    """Bookings that hold a seat for the pupil: their own, and their class's trips."""
    return or_(Booking.student_id == student.id, (Booking.kind == "class") & (Booking.class_id == student.class_id))


def student_bookings(student: Student, *, now: datetime | None = None) -> list[dict]:
    """A pupil's live bookings of activities not yet over — their own seats and their class's trips
    — soonest first, as the pupil's side sees them."""
    now = now or utcnow()
    live = db.session.scalars(
        select(Booking).join(Activity, Activity.id == Booking.activity_id)
        .where(Booking.status.in_(LIVE), Activity.ends_at > now, holds_seat_for(student))
        .order_by(Activity.starts_at, Booking.id)
    ).all()
    return booking_views(list(live), names=True)


def activity_bookings(activity: Activity) -> dict:
    """One activity's seats and its live bookings, in booking order, as its venue sees them."""
    booked, walked = _occupancy(activity)
    bookings = list(db.session.scalars(
        select(Booking).where(Booking.activity_id == activity.id, Booking.status.in_(LIVE)).order_by(Booking.id)
    ))
    views = booking_views(bookings, names=False)
    return {
        "activity_id": activity.id,
        "title": activity.title,
        "kind": activity.kind,
        "starts_at": iso(activity.starts_at),
        "ends_at": iso(activity.ends_at),
        "capacity": activity.capacity,
        "booked_seats": booked,
        "walk_ins": walked,
        "seats_left": seats_left(activity.capacity, booked, walked),
        "confirmed": [v for v in views if v["status"] == "confirmed"],
        "waitlist": [v for v in views if v["status"] == "waitlisted"],
    }


def venue_day(venue: Venue, day) -> dict:
    """The venue's bookings of one local day: every activity open that day, with its seats."""
    start, end = local_day_bounds(day)
    activities = db.session.scalars(
        select(Activity)
        .where(Activity.venue_id == venue.id, Activity.starts_at < end, Activity.ends_at > start)
        .order_by(Activity.starts_at, Activity.id)
    ).all()
    items = [activity_bookings(a) for a in activities]
    return {
        "venue_id": venue.id,
        "venue_name": venue.name,
        "date": start.date().isoformat(),
        "activities": items,
        "totals": {
            "bookings": sum(len(i["confirmed"]) for i in items),
            "seats": sum(i["booked_seats"] for i in items),
            "waitlisted": sum(len(i["waitlist"]) for i in items),
        },
    }


def no_shows(user: User, *, start: datetime | None = None, end: datetime | None = None,
             venue_id: int | None = None, now: datetime | None = None) -> list[dict]:
    """No-shows per venue over activities that have ended (starting in [start, end) when given):
    a confirmed booking with fewer pupils come in on it than seats booked. Counted for the venue's
    planning only — nothing of it is written to, or shown on, a pupil's record."""
    now = now or utcnow()
    attended = (
        select(func.count(BookingAttendance.id)).where(BookingAttendance.booking_id == Booking.id).scalar_subquery()
    )
    query = (
        select(Venue.id, Venue.name, Booking.kind, Booking.seats, attended)
        .select_from(Booking)
        .join(Activity, Activity.id == Booking.activity_id)
        .join(Venue, Venue.id == Activity.venue_id)
        .where(Booking.status == "confirmed", Activity.ends_at <= now, _venue_scope(user))
    )
    if start is not None:
        query = query.where(Activity.starts_at >= start)
    if end is not None:
        query = query.where(Activity.starts_at < end)
    if venue_id is not None:
        query = query.where(Venue.id == venue_id)
    per_venue: dict[int, dict] = {}
    for vid, name, kind, seats, came in db.session.execute(query):
        row = per_venue.setdefault(vid, {
            "venue_id": vid, "venue_name": name, "bookings": 0, "seats": 0, "attended_seats": 0,
            "no_show_bookings": 0, "no_show_seats": 0, "class_no_show_bookings": 0, "guardian_no_show_bookings": 0,
        })
        came = min(came, seats)
        row["bookings"] += 1
        row["seats"] += seats
        row["attended_seats"] += came
        if came < seats:
            row["no_show_bookings"] += 1
            row["no_show_seats"] += seats - came
            row[f"{kind}_no_show_bookings"] += 1
    for row in per_venue.values():
        row["no_show_rate"] = round(row["no_show_seats"] / row["seats"], 4) if row["seats"] else None
    return sorted(per_venue.values(), key=lambda r: r["venue_id"])


def _venue_scope(user: User):
    if user.role == "district_officer":
        return Venue.district_id == user.district_id
    return managed_venue_filter(user)
