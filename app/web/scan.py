"""The scan landing page /s/{token}: what a phone camera (or WeChat) opens from a venue QR code.

GET never changes anything: it checks the code and shows a confirm button (a pupil) or the list of
children (a parent). The POST records the scan through `checkins.service.scan`, with the page's
device id (a random id kept in the browser's localStorage) and the nonce rendered into the form,
so a double tap replays the first answer instead of scanning twice. The answer is then shown by a
GET of the stored scan rows (post/redirect/get), so reloading the result page changes nothing.
"""

from __future__ import annotations

import re

from flask import abort, flash, redirect, render_template, request, url_for
from sqlalchemy import select

from app.checkins import service as checkins
from app.checkins.models import Scan
from app.db import utcnow
from app.errors import APIError
from app.extensions import db
from app.orgs.models import GuardianLink, Student
from app.venues import codes
from app.venues.models import Activity
from app.web import bp
from app.web.auth import web_user
from app.web.helpers import new_nonce

_NONCE = re.compile(r"^[A-Za-z0-9-]{8,40}$")


def device_id() -> str | None:
    value = (request.form.get("device_id") or request.headers.get("X-Device-Id") or "").strip()
    return value[:128] or None


def _code(token: str):
    """(activity, direction, None) for a usable code, or (None, None, reason)."""
    try:
        activity_id, direction = codes.verify_venue_code(token, utcnow())
    except codes.CodeRefused as refusal:
        return None, None, refusal.reason
    activity = db.session.get(Activity, activity_id)
    if activity is None:
        return None, None, "code_invalid"
    return activity, direction, None


def _children(user) -> list[Student]:
    return db.session.scalars(
        select(Student).join(GuardianLink, GuardianLink.student_id == Student.id)
        .where(GuardianLink.guardian_id == user.id).order_by(Student.grade.desc(), Student.id)
    ).all()


@bp.route("/s/<token>", methods=["GET"])
def scan_landing(token: str):
    """签到页: a pupil confirms with one tap; a parent ticks children. Changes nothing by itself."""
    if len(token) > 1024:
        abort(404)
    activity, direction, reason = _code(token)
    user = web_user()
    if reason is not None:
        return render_template("scan.html", refusal=checkins.REASONS[reason], activity=None, direction=None,
                               token=token)
    if user is None:
        flash("请先登录，登录后会回到这个签到页面。", "info")
        return redirect(url_for("web.login", next=url_for("web.scan_landing", token=token)))
    children = _children(user) if user.role == "guardian" else []
    return render_template("scan.html", refusal=None, activity=activity, direction=direction, token=token,
                           children=children, nonce=new_nonce())


@bp.route("/s/<token>", methods=["POST"])
def scan_confirm(token: str):
    """Record the scan (the pupil themself, or each ticked child) and show the answer."""
    user = web_user()
    if user is None:
        flash("请先登录，登录后会回到这个签到页面。", "info")
        return redirect(url_for("web.login", next=url_for("web.scan_landing", token=token)))
    if len(token) > 1024:
        abort(404)
    nonce = request.form.get("nonce") or ""
    if not _NONCE.match(nonce):
        nonce = new_nonce()
    device = device_id()
    requests = []
    if user.role == "student":
        requests.append(checkins.ScanRequest(
            actor=user, source="self", code=token, nonce=nonce, device_id=device,
            body={"code": token, "nonce": nonce},
        ))
    elif user.role == "guardian":
        try:
            chosen = sorted({int(value) for value in request.form.getlist("student_id")})
        except ValueError:
            chosen = []
        if not chosen:
            flash("请先勾选要签到或签退的孩子。", "error")
            return redirect(url_for("web.scan_landing", token=token))
        for student_id in chosen[:20]:
            child_nonce = f"{nonce}-{student_id}"
            requests.append(checkins.ScanRequest(
                actor=user, source="guardian", code=token, student_id=student_id, nonce=child_nonce,
                device_id=device, body={"code": token, "student_id": student_id, "nonce": child_nonce},
            ))
    else:
        raise APIError(403, "forbidden", "场馆签到码供学生和家长扫描；工作人员请使用“扫学生码”页面。")
    scan_ids = []
    for req in requests:
        result = checkins.scan(req)
        scan_ids.append(result.scan_id)
    return redirect(url_for("web.scan_result", ids=",".join(str(i) for i in scan_ids)))


@bp.route("/s/result", methods=["GET"])
def scan_result():
    """The answer to the scans just made, in large type (entered / left with credits / refused)."""
    user = web_user()
    if user is None:
        return redirect(url_for("web.login"))
    try:
        ids = [int(part) for part in (request.args.get("ids") or "").split(",") if part][:20]
    except ValueError:
        ids = []
    rows = db.session.scalars(
        select(Scan).where(Scan.id.in_(ids), Scan.actor_id == user.id).order_by(Scan.id)
    ).all() if ids else []
    if not rows:
        abort(404)
    names = dict(db.session.execute(
        select(Student.id, Student.name).where(Student.id.in_({r.student_id for r in rows if r.student_id}))
    ).all())
    results = [_result_view(row, names) for row in rows]
    return render_template("scan_result.html", results=results)


def _result_view(row: Scan, names: dict) -> dict:
    body = row.response_body or {}
    view = {"name": names.get(row.student_id, ""), "direction": row.direction, "ok": "checkin" in body}
    if not view["ok"]:
        error = body.get("error", {})
        view.update(headline="未能签到" if row.direction != "exit" else "未能签退",
                    message=error.get("message", "扫描未成功，请重试。"))
        return view
    checkin, credit = body["checkin"], body.get("credit")
    activity_line = f"{checkin['venue_name']} · {checkin['activity_title']}"
    flags = [flag.get("message", "") for flag in checkin.get("flags") or []]
    if row.direction == "entry":
        view.update(headline="签到成功", activity=activity_line, at=checkin["entered_at"],
                    message="离开时请扫描场馆屏幕上的签退二维码。")
        if checkin["status"] == "flagged":
            view.update(headline="已签到，待老师复核",
                        message="；".join(flags) + "。签退后由老师复核，通过后计入学分。")
    else:
        view.update(headline="签退成功", activity=activity_line, at=checkin["exited_at"], minutes=checkin["minutes"])
        if credit is not None:
            view.update(amount=credit["amount"], message=(credit.get("explanation") or {}).get("summary", ""))
        elif checkin["status"] == "flagged":
            view.update(headline="已签退，待老师复核", message="；".join(flags) + "。老师复核通过后计入学分。")
    return view
