"""The public directory page (科普资源名录): GET /directory, server-rendered, zh-CN, mobile-first.

No login, no script: the filters are a plain GET form, so a school notice can link a filtered view
(`/directory?grade=5&kind=workshop&district_id=2`). Activities are grouped by district, then venue —
a map-like view by district. Styles are a static file (the CSP allows no inline style or script).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import urlencode

from flask import Blueprint, render_template, request, url_for
from marshmallow import ValidationError

from app.common import SHANGHAI
from app.credits.rules import ACTIVITY_KIND_LABELS, ACTIVITY_KINDS
from app.db import utcnow
from app.errors import APIError
from app.matching import directory
from app.matching.schemas import DirectoryActivityArgs

bp = Blueprint("matching_web", __name__, template_folder="templates", static_folder="static",
               static_url_path="/matching/static")

PAGE_SIZE = 200
WEEKDAYS = "一二三四五六日"
_args = DirectoryActivityArgs()


def _when(starts_at: str, ends_at: str) -> str:
    """"5月1日 周五 14:00–16:00", or a span of days for an activity open several days."""
    start, end = datetime.fromisoformat(starts_at), datetime.fromisoformat(ends_at)
    head = f"{start.month}月{start.day}日 周{WEEKDAYS[start.weekday()]} {start:%H:%M}"
    if start.date() == end.date():
        return f"{head}–{end:%H:%M}"
    return f"{head} 至 {end.month}月{end.day}日 {end:%H:%M}"


def _grades(grades: list[int]) -> str:
    if grades == list(range(grades[0], grades[-1] + 1)):
        return f"{grades[0]} 年级" if len(grades) == 1 else f"{grades[0]}–{grades[-1]} 年级"
    return "、".join(str(g) for g in grades) + " 年级"


def _seats(item: dict) -> tuple[str, str]:
    """(words, css class) for the seats left."""
    if item["seats_left"] is None:
        return "不限名额", "seats-open"
    if item["full"]:
        return "名额已满（可候补）", "seats-full"
    return f"剩余 {item['seats_left']} 个名额", "seats-few" if item["seats_left"] <= 5 else "seats-open"


def _grouped(items: list[dict]) -> list[dict]:
    """Districts → venues → activities, in the order first met (activities are soonest first)."""
    districts: dict[int, dict] = {}
    for item in items:
        venue = item["venue"]
        district = districts.setdefault(venue["district_id"], {
            "id": venue["district_id"], "name": venue["district_name"], "venues": {}, "count": 0,
        })
        district["count"] += 1
        entry = district["venues"].setdefault(venue["id"], {**venue, "activities": []})
        seats, seats_class = _seats(item)
        entry["activities"].append({**item, "when": _when(item["starts_at"], item["ends_at"]),
                                    "grades_text": _grades(item["grades"]), "seats_text": seats,
                                    "seats_class": seats_class})
    ordered = sorted(districts.values(), key=lambda d: d["id"])
    for district in ordered:
        district["venues"] = list(district["venues"].values())
    return ordered


@bp.get("/directory")
def directory_page():
    """The public menu of science activities, filtered by a GET form and grouped by district."""
    raw = {k: v for k, v in request.args.items() if v not in ("", None)}
    errors = {}
    try:
        args = _args.load(raw)
    except ValidationError as exc:
        errors = exc.messages
        args = _args.load({k: v for k, v in raw.items() if k not in exc.messages})
    page = args.pop("page")
    args.pop("per_page")
    try:
        result = directory.list_activities(page=page, per_page=PAGE_SIZE, **args)
    except APIError as exc:  # a range longer than a year
        errors = exc.details.get("fields", {})
        args.pop("end", None)
        result = directory.list_activities(page=page, per_page=PAGE_SIZE, **args)
    today = utcnow().astimezone(SHANGHAI).date()
    start = datetime.fromisoformat(result["from"]).date()
    end = (datetime.fromisoformat(result["to"]) - timedelta(seconds=1)).date()
    more = result["total"] > page * PAGE_SIZE
    next_url = url_for("matching_web.directory_page", **{**raw, "page": page + 1}) if more else None
    here = request.full_path.rstrip("?")
    return render_template(
        "matching/directory.html",
        groups=_grouped(result["items"]),
        total=result["total"],
        shown=len(result["items"]),
        next_url=next_url,
        errors=errors,
        form={"from": raw.get("from", start.isoformat()), "to": raw.get("to", end.isoformat()),
              "district_id": raw.get("district_id", ""), "grade": raw.get("grade", ""),
              "kind": raw.get("kind", ""), "theme": raw.get("theme", ""), "available": raw.get("available", "")},
        today=today.isoformat(),
        districts=directory.districts_with_venues(),
        kinds=[(k, ACTIVITY_KIND_LABELS[k]) for k in ACTIVITY_KINDS],
        login_url="/login?" + urlencode({"next": here}),
    )
