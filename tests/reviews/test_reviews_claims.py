"""Review queue, decisions, appeals, competition claims, term close and adjustments, through HTTP."""

from __future__ import annotations

import io
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from app.checkins.models import Checkin
from app.credits.ledger import verify_chain
from app.credits.models import LedgerEntry
from app.db import utcnow
from app.reviews.models import Review, ReviewEvent
from tests import factories as f

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
PDF = b"%PDF-1.4\n%fake but well-typed\n"
TODAY = date.today()


@pytest.fixture
def school(ctx):
    klass = f.school_class(grade=8)
    pupil = f.student(klass)
    return {
        "pupil": pupil,
        "student": f.student_user(pupil),
        "parent": f.user("guardian", children=[pupil]),
        "teacher": f.user("teacher", school_=pupil.school, classes=[klass]),
        "admin": f.user("school_admin", school_=pupil.school),
        "other_teacher": f.user("teacher", school_=pupil.school, classes=[f.school_class(pupil.school, grade=8)]),
    }


def claim(client, account, pupil, *, level="city", award="first", title="智能垃圾分类机器人", data=PNG,
          name="证书.png", day=None):
    form = {"competition": "深圳市青少年科技创新大赛", "level": level, "award": award, "work_title": title,
            "date": (day or TODAY - timedelta(days=3)).isoformat(), "evidence": (io.BytesIO(data), name)}
    return client.post(f"/api/v1/students/{pupil.id}/claims", data=form, headers=f.bearer(account),
                       content_type="multipart/form-data")


def decide(client, account, review_id, decision, reason=None):
    body = {"decision": decision, **({"reason": reason} if reason else {})}
    return client.post(f"/api/v1/reviews/{review_id}", json=body, headers=f.bearer(account))


def total(db_session, pupil):
    return db_session.scalar(select(func.sum(LedgerEntry.amount)).where(LedgerEntry.student_id == pupil.id))


def test_claim_submitted_reviewed_and_credited(client, school, db_session):
    res = claim(client, school["parent"], school["pupil"])
    assert res.status_code == 201 and res.json["status"] == "pending"
    queue = client.get("/api/v1/reviews?status=pending", headers=f.bearer(school["teacher"])).json
    assert [item["id"] for item in queue["items"]] == [res.json["review_id"]]
    assert queue["items"][0]["kind"] == "claim" and queue["items"][0]["claim"]["award_label"] == "一等奖"
    assert client.get("/api/v1/reviews", headers=f.bearer(school["other_teacher"])).json["total"] == 0
    evidence = client.get(queue["items"][0]["claim"]["evidence_url"], headers=f.bearer(school["teacher"]))
    assert evidence.status_code == 200 and evidence.mimetype == "image/png" and evidence.data == PNG
    ok = decide(client, school["teacher"], res.json["review_id"], "approve")
    assert ok.status_code == 200 and ok.json["status"] == "approved"
    assert str(total(db_session, school["pupil"])) == "3.00"  # city first prize
    assert decide(client, school["teacher"], res.json["review_id"], "approve").status_code == 409


def test_disguised_evidence_is_refused(client, school):
    res = claim(client, school["student"], school["pupil"], data=b"MZ\x90\x00 not an image", name="证书.jpg")
    assert res.status_code == 422 and res.json["error"]["code"] == "evidence_type"
    pdf = claim(client, school["student"], school["pupil"], data=PDF, name="award.pdf")
    assert pdf.status_code == 201


def test_claim_form_is_validated(client, school):
    res = claim(client, school["student"], school["pupil"], level="galactic")
    assert res.status_code == 422 and "level" in res.json["error"]["details"]["fields"]
    future = claim(client, school["student"], school["pupil"], day=TODAY + timedelta(days=5))
    assert future.status_code == 422
    stranger = f.user("guardian")
    assert claim(client, stranger, school["pupil"]).status_code == 404


def test_same_work_counts_once_at_its_highest_award(client, school, db_session):
    pupil = school["pupil"]
    amounts = []
    for level, award in (("district", "second"), ("city", "first"), ("city", "third")):
        res = claim(client, school["student"], pupil, level=level, award=award, title="智能 垃圾分类机器人")
        decide(client, school["teacher"], res.json["review_id"], "approve")
        amounts.append(str(total(db_session, pupil)))
    # district 2nd = 1.00; city 1st = 3.00 replaces it (reversal −1.00, credit 3.00); city 3rd: 0.00
    assert amounts == ["1.00", "3.00", "3.00"]
    kinds = db_session.scalars(select(LedgerEntry.kind).where(LedgerEntry.student_id == pupil.id)
                               .order_by(LedgerEntry.seq)).all()
    assert kinds == ["credit", "reversal", "credit", "credit"]
    assert verify_chain(pupil.id).ok


def test_reject_appeal_and_admin_decides(client, school, db_session):
    res = claim(client, school["student"], school["pupil"])
    review_id = res.json["review_id"]
    assert decide(client, school["teacher"], review_id, "reject").status_code == 422  # a reason is required
    rejected = decide(client, school["teacher"], review_id, "reject", "证书与作品名称不符")
    assert rejected.json["status"] == "rejected" and rejected.json["appeal_deadline"]
    assert client.post(f"/api/v1/reviews/{review_id}/appeal", json={"reason": "x" * 5},
                       headers=f.bearer(school["teacher"])).status_code == 403
    appealed = client.post(f"/api/v1/reviews/{review_id}/appeal", json={"reason": "已补充获奖名单截图"},
                           headers=f.bearer(school["parent"]))
    assert appealed.status_code == 200 and appealed.json["status"] == "appealed"
    again = client.post(f"/api/v1/reviews/{review_id}/appeal", json={"reason": "再申诉一次"},
                        headers=f.bearer(school["student"]))
    assert again.status_code == 409
    assert decide(client, school["teacher"], review_id, "approve").status_code == 403  # the school admin decides
    final = decide(client, school["admin"], review_id, "approve", "核实无误")
    assert final.json["status"] == "approved" and str(total(db_session, school["pupil"])) == "3.00"
    actions = db_session.scalars(select(ReviewEvent.action).where(ReviewEvent.review_id == review_id)
                                 .order_by(ReviewEvent.id)).all()
    assert actions == ["created", "rejected", "appealed", "approved"]
    # a school admin withdrawing an approval writes a reversal
    revoked = decide(client, school["admin"], review_id, "reject", "发现证书造假")
    assert revoked.json["status"] == "rejected" and str(total(db_session, school["pupil"])) == "0.00"


def test_appeal_window_is_seven_days(client, school, db_session):
    res = claim(client, school["student"], school["pupil"])
    decide(client, school["teacher"], res.json["review_id"], "reject", "材料不清晰")
    review = db_session.get(Review, res.json["review_id"])
    review.decided_at = utcnow() - timedelta(days=8)
    db_session.commit()
    late = client.post(f"/api/v1/reviews/{review.id}/appeal", json={"reason": "补交材料"},
                       headers=f.bearer(school["student"]))
    assert late.status_code == 422 and late.json["error"]["code"] == "appeal_expired"


def test_approving_a_flagged_stay_writes_its_credit(client, school, db_session):
    pupil = school["pupil"]
    act = f.activity(kind="workshop", starts_at=utcnow() - timedelta(hours=3))
    stay = Checkin(student_id=pupil.id, activity_id=act.id, venue_id=act.venue_id,
                   entered_at=utcnow() - timedelta(minutes=70), exited_at=utcnow() - timedelta(minutes=5),
                   deadline=act.ends_at, minutes=65, source="self", status="flagged",
                   flags=[{"code": "shared_device", "message": "同一设备…"}])
    db_session.add(stay)
    db_session.commit()
    from app.reviews.service import open_checkin_review

    review = open_checkin_review(stay, pupil)
    db_session.commit()
    item = client.get("/api/v1/reviews", headers=f.bearer(school["teacher"])).json["items"][0]
    assert item["kind"] == "checkin" and item["checkin"]["minutes"] == 65
    decide(client, school["teacher"], review.id, "approve")
    assert str(total(db_session, pupil)) == "1.50"
    assert db_session.get(Checkin, stay.id).status == "completed"


def test_term_close_refuses_scans_and_approvals_but_not_adjustments(client, school, db_session):
    from app.credits.rules import local_date, school_year_of, term_of

    today = local_date(utcnow())
    year, term = school_year_of(today), term_of(today)
    res = claim(client, school["student"], school["pupil"])
    pupil = school["pupil"]
    url = f"/api/v1/schools/{pupil.school_id}/terms/{year}/{term}/close"
    assert client.post(url, headers=f.bearer(school["teacher"])).status_code == 403
    assert client.post(url, headers=f.bearer(school["admin"])).status_code == 201
    assert client.post(url, headers=f.bearer(school["admin"])).status_code == 409
    refused = decide(client, school["teacher"], res.json["review_id"], "approve")
    assert refused.status_code == 422 and refused.json["error"]["code"] == "term_closed"
    act = f.activity(starts_at=utcnow() - timedelta(hours=1))
    from app.venues import codes

    scan = client.post("/api/v1/checkins", json={"code": codes.venue_code(act.id, "entry", utcnow()).token},
                       headers=f.bearer(school["student"]))
    assert scan.status_code == 422 and scan.json["error"]["code"] == "term_closed"
    adj = client.post(f"/api/v1/students/{pupil.id}/adjustments", headers=f.bearer(school["admin"]),
                      json={"amount": "1.50", "reason": "补录校外科普志愿服务", "school_year": year, "term": term,
                            "activity_kind": "volunteer"})
    assert adj.status_code == 201 and adj.json["kind"] == "adjustment" and adj.json["amount"] == "1.50"
    assert adj.json["term"] == term
    other_admin = f.user("school_admin", school_=f.school())
    assert client.post(f"/api/v1/students/{pupil.id}/adjustments", headers=f.bearer(other_admin),
                       json={"amount": "1.00", "reason": "x" * 3, "school_year": year, "term": term}).status_code == 404
