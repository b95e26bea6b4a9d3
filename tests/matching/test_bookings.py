"""Bookings: class trips and single seats, the waiting list, capacity shared with walk-ins, check-ins
linked to bookings, the venue's day list, and no-shows counted for the venue only."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.common import SHANGHAI
from app.db import utcnow
from app.extensions import db
from app.matching import bookings
from app.matching.models import Booking, BookingAttendance
from tests import factories as f
from tests.matching.helpers import soon, staff_entry


@pytest.fixture
def trip(ctx):
    school = f.school()
    klass = f.school_class(school, grade=5)
    pupils = [f.student(klass) for _ in range(4)]
    museum = f.venue(kind="science_museum", level="city", name="深圳科技馆")
    start, end = soon(48)
    return {
        "school": school,
        "class": klass,
        "pupils": pupils,
        "teacher": f.user("teacher", school_=school, classes=[klass]),
        "parent": f.user("guardian", children=pupils[:2]),
        "venue": museum,
        "staff": f.user("venue_staff", venues=[museum]),
        "activity": f.activity(museum, kind="workshop", starts_at=start, ends_at=end, capacity=2),
        "open_day": f.activity(museum, kind="visit", starts_at=start, ends_at=end),  # no capacity
    }


def book(client, account, activity, body):
    return client.post(f"/api/v1/activities/{activity.id}/bookings", json=body, headers=f.bearer(account))


def family(n, grade=5):
    """n (guardian, child) pairs."""
    out = []
    for _ in range(n):
        child = f.student(f.school_class(grade=grade))
        out.append((f.user("guardian", children=[child]), child))
    return out


def test_guardian_books_a_seat_for_a_child(client, trip):
    parent, child, act = trip["parent"], trip["pupils"][0], trip["activity"]
    res = book(client, parent, act, {"student_id": child.id})
    assert res.status_code == 201, res.json
    assert res.json["status"] == "confirmed" and res.json["status_label"] == "已预约"
    assert res.json["seats"] == 1 and res.json["student_name"] == child.name and res.json["kind"] == "guardian"
    assert "预约成功" in res.json["message"]
    again = book(client, parent, act, {"student_id": child.id})
    assert again.status_code == 409 and again.json["error"]["code"] == "already_booked"
    stranger = f.student(trip["class"])
    assert book(client, parent, act, {"student_id": stranger.id}).status_code == 404
    assert book(client, parent, act, {"class_id": trip["class"].id, "seats": 2}).status_code == 403
    assert book(client, trip["teacher"], act, {"student_id": child.id}).status_code == 403
    assert book(client, f.student_user(child), act, {"student_id": child.id}).status_code == 403
    assert client.post("/api/v1/activities/999999/bookings", json={"student_id": child.id},
                       headers=f.bearer(parent)).status_code == 404
    bad = book(client, parent, act, {"student_id": child.id, "class_id": trip["class"].id})
    assert bad.status_code == 422


def test_refusals(client, trip):
    parent, child = trip["parent"], trip["pupils"][0]
    for_little_ones = f.activity(trip["venue"], kind="lecture", grades=[1, 2], starts_at=soon(24)[0])
    res = book(client, parent, for_little_ones, {"student_id": child.id})
    assert res.status_code == 422 and res.json["error"]["code"] == "not_eligible" and res.json["error"]["message"]
    res = book(client, trip["teacher"], for_little_ones, {"class_id": trip["class"].id, "seats": 2})
    assert res.json["error"]["code"] == "not_eligible"
    ended = f.activity(trip["venue"], starts_at=utcnow() - timedelta(hours=5), ends_at=utcnow() - timedelta(hours=1))
    assert book(client, parent, ended, {"student_id": child.id}).json["error"]["code"] == "booking_closed"
    child.active = False
    assert book(client, parent, trip["activity"], {"student_id": child.id}).json["error"]["code"] == "student_inactive"


def test_waiting_list_in_order_and_cancellation_promotes(client, trip):
    act = trip["activity"]  # 2 seats
    families = family(5)
    answers = [book(client, g, act, {"student_id": c.id}) for g, c in families]
    assert [a.status_code for a in answers] == [201] * 5
    assert [a.json["status"] for a in answers] == ["confirmed"] * 2 + ["waitlisted"] * 3
    assert [a.json["waitlist_position"] for a in answers] == [None, None, 1, 2, 3]
    assert "候补" in answers[2].json["message"] and "第 1 位" in answers[2].json["message"]
    guardian, child = family(1)[0]
    no_wait = book(client, guardian, act, {"student_id": child.id, "waitlist": False})
    assert no_wait.status_code == 422 and no_wait.json["error"]["code"] == "activity_full"

    gone = client.delete(f"/api/v1/bookings/{answers[0].json['id']}?reason=生病", headers=f.bearer(families[0][0]))
    assert gone.status_code == 200 and gone.json["status"] == "cancelled"
    assert gone.json["promoted_booking_ids"] == [answers[2].json["id"]]
    mine = client.get(f"/api/v1/bookings/{answers[3].json['id']}", headers=f.bearer(families[3][0])).json
    assert mine["status"] == "waitlisted" and mine["waitlist_position"] == 1
    promoted = client.get(f"/api/v1/bookings/{answers[2].json['id']}", headers=f.bearer(families[2][0])).json
    assert promoted["status"] == "confirmed" and promoted["waitlist_position"] is None
    again = client.delete(f"/api/v1/bookings/{answers[0].json['id']}", headers=f.bearer(families[0][0]))
    assert again.status_code == 200 and again.json["promoted_booking_ids"] == []  # idempotent
    # a waitlisted booking may be cancelled too; the list closes up behind it
    client.delete(f"/api/v1/bookings/{answers[3].json['id']}", headers=f.bearer(families[3][0]))
    last = client.get(f"/api/v1/bookings/{answers[4].json['id']}", headers=f.bearer(families[4][0])).json
    assert last["waitlist_position"] == 1
    # someone else's booking is not found
    assert client.delete(f"/api/v1/bookings/{answers[1].json['id']}",
                         headers=f.bearer(families[4][0])).status_code == 404


def test_class_booking_is_whole_or_refused(client, trip):
    act, teacher, klass = trip["activity"], trip["teacher"], trip["class"]
    too_many = book(client, teacher, act, {"class_id": klass.id, "seats": 3})
    assert too_many.status_code == 422 and too_many.json["error"]["code"] == "not_enough_seats"
    assert too_many.json["error"]["details"] == {"seats_left": 2, "requested": 3}
    more_than_class = book(client, teacher, trip["open_day"], {"class_id": klass.id, "seats": 5})
    assert more_than_class.status_code == 422 and "seats" in more_than_class.json["error"]["details"]["fields"]
    assert book(client, teacher, act, {"class_id": klass.id}).status_code == 422  # seats required
    ok = book(client, teacher, act, {"class_id": klass.id, "seats": 2, "note": "5年级科学课"})
    assert ok.status_code == 201 and ok.json["status"] == "confirmed" and ok.json["class_name"] == klass.name
    other = f.school_class(trip["school"], grade=5)
    f.student(other)
    other_teacher = f.user("teacher", school_=trip["school"], classes=[other])
    full = book(client, other_teacher, act, {"class_id": other.id, "seats": 1})
    assert full.status_code == 422 and full.json["error"]["code"] == "activity_full"
    assert book(client, other_teacher, act, {"class_id": klass.id, "seats": 1}).status_code == 404  # not their class
    dup = book(client, teacher, trip["open_day"], {"class_id": klass.id, "seats": 4})
    assert dup.status_code == 201  # no capacity: always confirmed
    assert book(client, teacher, trip["open_day"], {"class_id": klass.id, "seats": 1}).status_code == 409
    listed = client.get("/api/v1/bookings", headers=f.bearer(teacher)).json
    assert listed["total"] == 2 and {b["class_id"] for b in listed["items"]} == {klass.id}


def test_booked_pupil_always_enters_and_walk_ins_share_the_rest(trip):
    act, staff = trip["activity"], trip["staff"]  # 2 seats
    booked_child = trip["pupils"][0]
    booking = bookings.book_student(actor=trip["parent"], activity=act, student=booked_child)
    act.starts_at = utcnow() - timedelta(minutes=5)
    walk_in, late = f.student(f.school_class(grade=5)), f.student(f.school_class(grade=5))
    assert staff_entry(staff, walk_in, act).status == 201  # the one seat nobody booked
    refused = staff_entry(staff, late, act)
    assert refused.status == 422 and refused.body["error"]["code"] == "activity_full"
    entry = staff_entry(staff, booked_child, act)
    assert entry.status == 201  # the booked seat is always there
    link = db.session.scalar(select(BookingAttendance).where(BookingAttendance.booking_id == booking.id))
    assert link.checkin_id == entry.body["checkin"]["id"] and link.student_id == booked_child.id
    # a walk-in coming back keeps their seat
    leave = staff_entry(staff, walk_in, act, at=utcnow() + timedelta(seconds=1))
    assert leave.status == 422 and leave.body["error"]["code"] == "already_checked_in"
    # the booking was used: it can no longer be cancelled
    with pytest.raises(bookings.APIError) as refused_cancel:
        bookings.cancel(actor=trip["parent"], booking=booking)
    assert refused_cancel.value.code == "booking_in_use"


def test_class_booking_links_classmates_by_membership(client, trip):
    act, staff, klass = trip["activity"], trip["staff"], trip["class"]
    booking = bookings.book_class(actor=trip["teacher"], activity=act, klass=klass, seats=2)
    act.starts_at = utcnow() - timedelta(minutes=5)
    a, b, c, _ = trip["pupils"]
    assert staff_entry(staff, a, act).status == 201
    res = client.post(f"/api/v1/activities/{act.id}/group-checkins", headers=f.bearer(trip["teacher"]),
                      json={"student_ids": [b.id, c.id], "direction": "entry"})
    assert [r["status"] for r in res.json["results"]] == ["accepted", "refused"]
    assert res.json["results"][1]["reason"] == "activity_full"  # a third classmate: no seat left
    linked = db.session.scalars(
        select(BookingAttendance.student_id).where(BookingAttendance.booking_id == booking.id)
    ).all()
    assert sorted(linked) == sorted([a.id, b.id])
    view = client.get(f"/api/v1/bookings/{booking.id}", headers=f.bearer(trip["teacher"])).json
    assert view["attended"] == 2


def test_activity_without_capacity_still_links_and_never_refuses(trip):
    act, staff = trip["open_day"], trip["staff"]
    booking = bookings.book_student(actor=trip["parent"], activity=act, student=trip["pupils"][1])
    assert booking.status == "confirmed"
    act.starts_at = utcnow() - timedelta(minutes=5)
    assert staff_entry(staff, trip["pupils"][1], act).status == 201
    assert bookings.attendance_count(booking.id) == 1
    assert staff_entry(staff, trip["pupils"][2], act).status == 201


def test_booking_a_pupil_already_inside_is_refused(trip):
    act = trip["open_day"]
    act.starts_at = utcnow() - timedelta(minutes=5)
    child = trip["pupils"][0]
    assert staff_entry(trip["staff"], child, act).status == 201
    with pytest.raises(bookings.APIError) as refused:
        bookings.book_student(actor=trip["parent"], activity=act, student=child)
    assert refused.value.code == "already_checked_in"


def test_venue_day_list_shows_seats_not_names(client, trip):
    act = trip["activity"]
    bookings.book_class(actor=trip["teacher"], activity=act, klass=trip["class"], seats=1)
    bookings.book_student(actor=trip["parent"], activity=act, student=trip["pupils"][0])
    waiting_parent, waiting_child = family(1)[0]
    bookings.book_student(actor=waiting_parent, activity=act, student=waiting_child)
    day = act.starts_at.astimezone(SHANGHAI).date()
    res = client.get(f"/api/v1/venues/{trip['venue'].id}/bookings?date={day.isoformat()}", headers=f.bearer(trip["staff"]))
    assert res.status_code == 200, res.json
    listed = {a["activity_id"]: a for a in res.json["activities"]}
    seats = listed[act.id]
    assert (seats["capacity"], seats["booked_seats"], seats["walk_ins"], seats["seats_left"]) == (2, 2, 0, 0)
    assert [b["kind"] for b in seats["confirmed"]] == ["class", "guardian"]
    assert seats["confirmed"][0]["class_name"] == trip["class"].name
    assert seats["confirmed"][0]["booked_by_name"] == trip["teacher"].display_name
    assert len(seats["waitlist"]) == 1 and seats["waitlist"][0]["waitlist_position"] == 1
    text = res.get_data(as_text=True)
    for pupil in (*trip["pupils"], waiting_child):
        assert pupil.name not in text and pupil.student_number not in text
    assert "student_id" not in text
    assert res.json["totals"] == {"bookings": 2, "seats": 2, "waitlisted": 1}
    one = client.get(f"/api/v1/activities/{act.id}/bookings", headers=f.bearer(trip["staff"]))
    assert one.status_code == 200 and one.json["booked_seats"] == 2
    other_staff = f.user("venue_staff", venues=[f.venue()])
    assert client.get(f"/api/v1/venues/{trip['venue'].id}/bookings", headers=f.bearer(other_staff)).status_code == 404
    assert client.get(f"/api/v1/activities/{act.id}/bookings", headers=f.bearer(other_staff)).status_code == 404
    assert client.get(f"/api/v1/venues/{trip['venue'].id}/bookings", headers=f.bearer(trip["teacher"])).status_code == 403
    staff_view = client.get("/api/v1/bookings", headers=f.bearer(trip["staff"])).json
    assert staff_view["total"] == 3 and all("student_name" not in b for b in staff_view["items"])


def test_venue_staff_may_cancel_a_session_booking(client, trip):
    booking = bookings.book_student(actor=trip["parent"], activity=trip["activity"], student=trip["pupils"][0])
    res = client.delete(f"/api/v1/bookings/{booking.id}?reason=场馆临时闭馆", headers=f.bearer(trip["staff"]))
    assert res.status_code == 200 and res.json["status"] == "cancelled" and "student_name" not in res.json


def test_no_shows_are_counted_for_the_venue_never_for_the_child(client, trip):
    act, staff = trip["activity"], trip["staff"]
    act.capacity = 10
    absent = trip["pupils"][1]
    guardian_booking = bookings.book_student(actor=trip["parent"], activity=act, student=absent)
    came = trip["pupils"][0]
    bookings.book_student(actor=trip["parent"], activity=act, student=came)
    class_booking = bookings.book_class(actor=trip["teacher"], activity=act, klass=trip["class"], seats=3)
    act.starts_at = utcnow() - timedelta(hours=3)
    assert staff_entry(staff, came, act).status == 201  # on the guardian's booking
    assert staff_entry(staff, trip["pupils"][2], act).status == 201  # one classmate on the class booking
    act.ends_at = utcnow() - timedelta(minutes=1)
    db.session.commit()
    res = client.get("/api/v1/bookings/no-shows", headers=f.bearer(staff))
    assert res.status_code == 200
    (row,) = res.json["items"]
    assert row["venue_id"] == trip["venue"].id
    assert (row["bookings"], row["seats"], row["attended_seats"]) == (3, 5, 2)
    assert (row["no_show_bookings"], row["no_show_seats"]) == (2, 3)
    assert (row["guardian_no_show_bookings"], row["class_no_show_bookings"]) == (1, 1)
    assert row["no_show_rate"] == 0.6
    city = f.user("city_officer")
    assert client.get("/api/v1/bookings/no-shows", headers=f.bearer(city)).json["items"][0]["no_show_seats"] == 3
    assert client.get("/api/v1/bookings/no-shows", headers=f.bearer(f.user("venue_staff"))).json["items"] == []
    assert client.get("/api/v1/bookings/no-shows", headers=f.bearer(trip["parent"])).status_code == 403
    # nothing of it on the child's record: no ledger entry, no flag, the booking reads as booked
    ledger = client.get(f"/api/v1/students/{absent.id}/ledger", headers=f.bearer(trip["parent"])).json
    assert ledger["total"] == 0
    view = client.get(f"/api/v1/bookings/{guardian_booking.id}", headers=f.bearer(trip["parent"])).json
    assert view["status"] == "confirmed" and "no_show" not in str(view)
    # after the end a booking is neither made nor cancelled
    closed = client.delete(f"/api/v1/bookings/{class_booking.id}", headers=f.bearer(trip["teacher"]))
    assert closed.status_code == 422 and closed.json["error"]["code"] == "booking_closed"


def test_cancelling_a_class_trip_promotes_several_families(trip):
    act = trip["activity"]
    act.capacity = 3
    trip_booking = bookings.book_class(actor=trip["teacher"], activity=act, klass=trip["class"], seats=3)
    waiting = [bookings.book_student(actor=g, activity=act, student=c) for g, c in family(3)]
    assert [b.status for b in waiting] == ["waitlisted"] * 3
    _, promoted = bookings.cancel(actor=trip["teacher"], booking=trip_booking)
    assert [b.id for b in promoted] == [b.id for b in waiting]
    assert db.session.scalar(
        select(func.count(Booking.id)).where(Booking.activity_id == act.id, Booking.status == "confirmed")
    ) == 3


def test_bookings_list_for_a_guardian(client, trip):
    bookings.book_student(actor=trip["parent"], activity=trip["activity"], student=trip["pupils"][0])
    bookings.book_student(actor=trip["parent"], activity=trip["open_day"], student=trip["pupils"][1])
    res = client.get("/api/v1/bookings", headers=f.bearer(trip["parent"]))
    assert res.json["total"] == 2
    res = client.get(f"/api/v1/bookings?student_id={trip['pupils'][1].id}", headers=f.bearer(trip["parent"]))
    assert [b["student_id"] for b in res.json["items"]] == [trip["pupils"][1].id]
    pupil_view = client.get("/api/v1/bookings", headers=f.bearer(f.student_user(trip["pupils"][0]))).json
    assert pupil_view["total"] == 1
    assert client.get("/api/v1/bookings", headers=f.bearer(f.user("guardian"))).json["total"] == 0
