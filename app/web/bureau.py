"""Bureau dashboard (教育局统计看板): filters, charts of participation and credits by district, grade
and month, the top venues (科普活动指数), and exports — all from `app.stats.service`, so the page
shows exactly what the API answers, small-cell suppression included (a hidden cell is drawn as a
hatched bar marked 少于5人, never as zero). Charts are SVG drawn on the server: no script, no
charting library, nothing from another host."""

from __future__ import annotations

from decimal import Decimal

from flask import render_template, request
from sqlalchemy import select

from app.errors import APIError
from app.extensions import db
from app.orgs.models import District
from app.web import bp
from app.web.auth import page
from app.web.helpers import current_school_year

OFFICERS = ("district_officer", "city_officer", "admin")
TOP_VENUES = 8
HIDDEN_TEXT = "不公开"  # a suppressed cell: fewer than STATS_MIN_CELL pupils, or one that would reveal such a cell

# Chart geometry (SVG user units; the SVG scales to the page width).
CHART_WIDTH = 360
LABEL_WIDTH = 112
VALUE_WIDTH = 64
ROW_HEIGHT = 30
BAR_HEIGHT = 18


def school_years(current: str, back: int = 2) -> list[str]:
    first = int(current[:4])
    return [f"{y}-{y + 1}" for y in range(first, first - back - 1, -1)]


def hbars(items: list[dict], key: str, *, percent: bool = False, whole: bool = False,
          label_key: str = "label") -> dict:
    """A horizontal bar chart of `key` over `items`; suppressed rows become hatched placeholders."""
    values = [Decimal(str(i[key])) for i in items if not i.get("suppressed") and i.get(key) is not None]
    top = max(values, default=Decimal(0))
    if percent:
        top = Decimal(1)  # rates are drawn against 100 %, never stretched
    span = CHART_WIDTH - LABEL_WIDTH - VALUE_WIDTH
    rows = []
    for index, item in enumerate(items):
        y = index * ROW_HEIGHT + 6
        label = str(item.get(label_key) or "")
        row = {"label": label if len(label) <= 8 else label[:7] + "…", "full_label": label, "y": y,
               "text_y": y + BAR_HEIGHT - 4, "suppressed": bool(item.get("suppressed"))}
        value = item.get(key)
        if row["suppressed"] or value is None:
            hidden = row["suppressed"]
            row.update(width=span if hidden else 0.0, text=HIDDEN_TEXT if hidden else "—", hatched=hidden)
        else:
            amount = Decimal(str(value))
            row.update(width=float(amount / top * span) if top > 0 else 0.0, hatched=False,
                       text=f"{amount * 100:.0f}%" if percent else f"{amount:.0f}" if whole else f"{amount:.2f}")
        rows.append(row)
    return {"rows": rows, "height": max(len(rows), 1) * ROW_HEIGHT + 12, "width": CHART_WIDTH,
            "label_width": LABEL_WIDTH, "bar_x": LABEL_WIDTH, "span": span, "bar_height": BAR_HEIGHT,
            "value_x": CHART_WIDTH - 4}


def columns(items: list[dict], key: str, label_key: str = "month") -> dict:
    """A column chart (one column per month) of `key`; suppressed months become hatched columns."""
    height, base = 170, 140
    values = [Decimal(str(i[key])) for i in items if not i.get("suppressed") and i.get(key) is not None]
    top = max(values, default=Decimal(0))
    count = max(len(items), 1)
    slot = (CHART_WIDTH - 20) / count
    width = min(slot * 0.7, 40)
    cols = []
    for index, item in enumerate(items):
        x = 10 + index * slot + (slot - width) / 2
        month = str(item.get(label_key) or "")
        label = f"{int(month[5:7])}月" if len(month) == 7 else month
        value = item.get(key)
        suppressed = bool(item.get("suppressed")) or value is None
        bar = 110.0 if suppressed else (float(Decimal(str(value)) / top * 110) if top > 0 else 0.0)
        cols.append({"x": x, "width": width, "y": base - bar, "height": bar, "label": label,
                     "label_x": x + width / 2, "hatched": suppressed,
                     "text": HIDDEN_TEXT if suppressed else _compact(Decimal(str(value)))})
    return {"cols": cols, "width": CHART_WIDTH, "height": height, "base": base}


def _compact(amount: Decimal) -> str:
    """A column's label that fits above it: 3.5, 42.5, 1280."""
    return f"{amount:.0f}" if amount >= 100 else f"{amount:.1f}"


def _districts(user) -> list[District]:
    query = select(District).order_by(District.code)
    if user.role == "district_officer":
        query = query.where(District.id == user.district_id)
    return db.session.scalars(query).all()


@bp.route("/bureau")
@page(*OFFICERS)
def bureau_home(user):
    """统计看板: participation and credits by district (or school), grade and month; top venues."""
    from app.stats import service as stats

    current = current_school_year()
    years = school_years(current)
    school_year = request.args.get("school_year") if request.args.get("school_year") in years else current
    districts = _districts(user)
    district_id = request.args.get("district_id", type=int)
    if user.role == "district_officer":
        district_id = user.district_id
    if district_id is not None and district_id not in {d.id for d in districts}:
        district_id = None
    place_dim = "school" if district_id is not None else "district"
    filters = {"school_year": school_year, "district_id": district_id}
    try:
        by_place = stats.credit_stats(user=user, group_by=place_dim, **filters)["items"]
        by_grade = stats.credit_stats(user=user, group_by="grade", **filters)["items"]
        by_month = stats.credit_stats(user=user, group_by="month", **filters)["items"]
        by_kind = stats.credit_stats(user=user, group_by="activity_kind", **filters)["items"]
        venues = stats.venue_stats(user=user, school_year=school_year, district_id=district_id)["items"]
    except APIError:
        db.session.rollback()
        raise
    db.session.commit()  # the roll-ups may have been refreshed
    for row in by_grade:
        row.setdefault("label", "")
    ranked = sorted((v for v in venues if not v.get("suppressed") and v.get("checkins")),
                    key=lambda v: (-v["checkins"], v["venue_id"]))
    hidden_venues = sum(1 for v in venues if v.get("suppressed"))
    top = ranked[:TOP_VENUES]
    totals = _totals(by_place)
    export_args = {"school_year": school_year, **({"district_id": district_id} if district_id else {})}
    return render_template(
        "bureau_home.html",
        years=years, school_year=school_year, districts=districts, district_id=district_id,
        place_dim=place_dim, by_place=by_place, by_grade=by_grade, by_month=by_month, by_kind=by_kind,
        top=top, hidden_venues=hidden_venues, totals=totals, export_args=export_args,
        place_chart=hbars(by_place, "participation_rate", percent=True),
        place_mean_chart=hbars(by_place, "credits_mean"),
        grade_chart=hbars(by_grade, "participation_rate", percent=True),
        grade_met_chart=hbars(by_grade, "met_rate", percent=True),
        month_chart=columns(by_month, "credits_total"),
        venue_chart=hbars(top, "checkins", whole=True, label_key="name"),
        min_cell=stats.min_cell(),
    )


def _totals(rows: list[dict]) -> dict:
    visible = [r for r in rows if not r.get("suppressed")]
    students = sum(r["students"] or 0 for r in visible)
    participating = sum(r["participating"] or 0 for r in visible)
    credits = sum(Decimal(r["credits_total"] or "0") for r in visible)
    return {
        "students": students,
        "participating": participating,
        "rate": f"{participating / students * 100:.0f}%" if students else "—",
        "credits": f"{credits:.2f}",
        "hidden": len(rows) - len(visible),
    }


@bp.route("/bureau/export/<what>.<fmt>")
@page(*OFFICERS)
def bureau_export(user, what: str, fmt: str):
    """The dashboard's tables as xlsx or csv (the API's exports: Chinese headers, suppressed cells empty)."""
    from app.stats import export
    from app.stats import service as stats

    if fmt not in ("xlsx", "csv") or what not in ("district", "school", "grade", "month", "activity_kind", "venues"):
        raise APIError(404, "not_found", "找不到该导出文件。")
    current = current_school_year()
    school_year = request.args.get("school_year") or current
    district_id = request.args.get("district_id", type=int)
    if user.role == "district_officer":
        district_id = user.district_id
    if what == "venues":
        result = stats.venue_stats(user=user, school_year=school_year, district_id=district_id)
    else:
        result = stats.credit_stats(user=user, school_year=school_year, group_by=what, district_id=district_id)
    db.session.commit()
    return export.file_response(result, fmt, venues=what == "venues")
