"""A parent books a recommended activity for a child in one tap, and gives the seat back: the
guardian home's 预约 / 排候补 / 取消预约 forms (SPEC §12), through Flask's test client on the e2e app
and once in a real browser."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.db import utcnow
from app.matching import bookings
from app.matching.models import Booking
from app.orgs.models import Student
from app.venues.models import Activity
from tests import factories as f

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def client(live_app):
    return live_app.test_client()


def _family(data, *, capacity=None, grades=None):
    """A parent with one child in grade 6 and a workshop next week (with `capacity` seats)."""
    with data():
        klass = f.school_class(grade=6, name="六年级(3)班")
        child = f.student(klass, name="周子涵")
        parent = f.user("guardian", children=[child])
        starts = utcnow() + timedelta(days=7)
        workshop = f.activity(f.venue(name="福田科学馆"), kind="workshop", title="3D 打印工作坊",
                              starts_at=starts, ends_at=starts + timedelta(hours=2), capacity=capacity,
                              grades=grades)
        return parent.username, child.id, workshop.id


def _login(client, username):
    token = TOKEN.search(client.get("/login").get_data(as_text=True)).group(1)
    assert client.post("/login", data={"username": username, "password": f.PASSWORD,
                                       "csrf_token": token}).status_code == 302


def _csrf(client) -> str:
    return TOKEN.search(client.get("/guardian").get_data(as_text=True)).group(1)


def _class_trip(session, pupil, activity_id) -> Booking:
    """The pupil's teacher books one seat of the activity for the pupil's class."""
    klass = pupil.school_class
    return bookings.book_class(actor=f.user("teacher", classes=[klass]), activity=session.get(Activity, activity_id),
                               klass=klass, seats=1)


def _book(client, child_id, activity_id):
    return client.post(f"/children/{child_id}/bookings", data={"activity_id": activity_id, "csrf_token": _csrf(client)})


def _bookings(data, child_id):
    with data() as session:
        return [(b.activity_id, b.status) for b in session.scalars(
            select(Booking).where(Booking.student_id == child_id).order_by(Booking.id))]


def test_book_then_cancel(client, data):
    username, child_id, workshop_id = _family(data, capacity=20)
    _login(client, username)
    response = _book(client, child_id, workshop_id)
    assert response.status_code == 302 and response.headers["Location"].endswith("/guardian")  # the message on top
    assert _bookings(data, child_id) == [(workshop_id, "confirmed")]
    page = client.get("/guardian").get_data(as_text=True)
    assert "周子涵：预约成功：3D 打印工作坊，1 个名额。" in page
    assert "已预约" in page and "取消预约" in page

    again = _book(client, child_id, workshop_id)
    assert again.status_code == 302
    assert "已经预约过该活动" in client.get("/guardian").get_data(as_text=True)
    assert _bookings(data, child_id) == [(workshop_id, "confirmed")]

    with data() as session:
        booking_id = session.scalar(select(Booking.id).where(Booking.student_id == child_id))
    cancelled = client.post(f"/bookings/{booking_id}/cancel", data={"csrf_token": _csrf(client)})
    assert cancelled.status_code == 302
    assert "已取消预约：3D 打印工作坊。" in client.get("/guardian").get_data(as_text=True)
    assert _bookings(data, child_id) == [(workshop_id, "cancelled")]


def test_a_full_activity_puts_the_child_on_the_waiting_list_and_a_cancellation_promotes(client, data):
    username, child_id, workshop_id = _family(data, capacity=1)
    with data():
        other = f.student(f.school_class(grade=6))
        other_parent = f.user("guardian", children=[other])
        other_username, other_id = other_parent.username, other.id
    _login(client, other_username)
    _book(client, other_id, workshop_id)
    client.post("/logout", data={"csrf_token": _csrf(client)})
    other_booking = _bookings(data, other_id)
    assert other_booking == [(workshop_id, "confirmed")]

    _login(client, username)
    _book(client, child_id, workshop_id)
    page = client.get("/guardian").get_data(as_text=True)
    assert "名额已满，已加入候补，排第 1 位" in page
    assert "候补中 · 第 1 位" in page
    assert _bookings(data, child_id) == [(workshop_id, "waitlisted")]

    # the other parent gives the seat back: the first on the waiting list gets it
    client.post("/logout", data={"csrf_token": _csrf(client)})
    _login(client, other_username)
    with data() as session:
        seat = session.scalar(select(Booking.id).where(Booking.student_id == other_id))
    client.post(f"/bookings/{seat}/cancel", data={"csrf_token": _csrf(client)})
    assert _bookings(data, child_id) == [(workshop_id, "confirmed")]


def test_refusals_are_told_in_chinese_and_write_nothing(client, data):
    username, child_id, workshop_id = _family(data, grades=[1, 2])
    _login(client, username)
    assert _book(client, child_id, workshop_id).status_code == 302
    assert "该活动不面向这个年级" in client.get("/guardian").get_data(as_text=True)
    assert _bookings(data, child_id) == []


def test_only_ones_own_children_and_only_parents_bookings(client, data):
    username, child_id, workshop_id = _family(data)
    with data() as session:
        stranger = f.student(f.school_class(grade=6))
        trip = _class_trip(session, f.student(f.school_class(grade=6)), workshop_id)
        stranger_id, trip_id = stranger.id, trip.id
    _login(client, username)
    assert _book(client, stranger_id, workshop_id).status_code == 404
    assert _book(client, child_id, 999_999).status_code == 404
    assert _book(client, child_id, 10**20).status_code == 404  # larger than any id, not a 500
    assert _book(client, child_id, 2**40).status_code == 404  # beyond PostgreSQL's integer, not a 500
    assert client.post(f"/bookings/{trip_id}/cancel", data={"csrf_token": _csrf(client)}).status_code == 404
    assert _bookings(data, stranger_id) == []


def test_the_forms_need_the_csrf_token(client, data):
    username, child_id, workshop_id = _family(data)
    _login(client, username)
    response = client.post(f"/children/{child_id}/bookings", data={"activity_id": workshop_id})
    assert response.status_code == 400
    assert _bookings(data, child_id) == []


def test_a_parent_books_a_recommendation_in_one_tap(open_page, data):
    username, child_id, _ = _family(data, capacity=30)
    page = open_page()
    page.login(username, None)
    assert page.page.url.endswith("/guardian")
    card = page.page.locator(f"#child-{child_id}")
    first = card.locator(".recommendation").first
    activity_id = int(first.locator('input[name="activity_id"]').get_attribute("value"))
    label = first.locator("button").inner_text()
    assert label in ("预约", "排候补")
    page.check("guardian-book-1-recommendations")
    with page.page.expect_navigation():
        first.locator("button").click()
    flash = page.page.inner_text(".flash")
    expected = "confirmed" if label == "预约" else "waitlisted"
    assert flash.startswith("周子涵：") and ("预约成功" if expected == "confirmed" else "已加入候补") in flash
    assert (activity_id, expected) in _bookings(data, child_id)
    booked = card.locator(".bookings .booking")
    assert booked.count() == 1 and booked.locator(".btn-danger").inner_text() == "取消预约"
    page.check("guardian-book-2-booked")
    asked = []
    page.page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
    booked.locator(".btn-danger").click()  # "no" to the question: nothing happens
    page.page.wait_for_timeout(300)
    assert asked and "让给候补" in asked[0] and (activity_id, expected) in _bookings(data, child_id)
    page.page.once("dialog", lambda dialog: dialog.accept())
    with page.page.expect_navigation():
        booked.locator(".btn-danger").click()
    assert "已取消预约" in page.page.inner_text(".flash")
    assert (activity_id, "cancelled") in _bookings(data, child_id)
    assert page.page.locator(f"#child-{child_id} .bookings").count() == 0


def test_an_activity_the_childs_class_booked_is_listed_not_offered_again(client, data):
    username, child_id, workshop_id = _family(data, capacity=40)
    with data() as session:
        _class_trip(session, session.get(Student, child_id), workshop_id)
    _login(client, username)
    page = client.get("/guardian").get_data(as_text=True)
    card = page[page.index(f'id="child-{child_id}"'):]
    assert "班级团体预约" in card  # under 已预约, without a cancel button for the parent
    assert f'name="activity_id" value="{workshop_id}"' not in card  # no second seat offered
