"""The printable transcript (学分报告单): an A4 PDF in Chinese with a QR code that verifies it.

Fonts: by default the text is set in reportlab's built-in CID font STSong-Light (Adobe-GB1), which
needs no font file on the server: the PDF names the font and every Chinese-capable reader (Acrobat,
WPS, browsers, phones) supplies the glyphs. Set TRANSCRIPT_FONT_PATH to a TrueType font (.ttf, or a
.ttc whose first face has CJK glyphs, e.g. WenQuanYi Micro Hei) to embed a subset of it instead, so
the page looks the same even on a machine without any Chinese font.

The page is drawn straight onto a reportlab canvas with a small layout of its own (no platypus):
a year of 500 entries is ten pages of table, and writing each cell as one PDF text operator keeps
the whole document well under the 250 ms the benchmark allows (bench/transcript.py). The QR code is
vector (one path of squares) and encodes `{PUBLIC_BASE_URL}/verify/{public_id}`; the id is printed
beside it so it can be typed in by hand.
"""

from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path

import qrcode
from flask import current_app
from qrcode.constants import ERROR_CORRECT_M
from reportlab import rl_config
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen.canvas import Canvas

from app.credits.rules import ACTIVITY_KIND_LABELS, AWARD_LABELS, LEVEL_LABELS

# Binary (Flate-only) content streams: reportlab's pure-Python ASCII85 encoding would otherwise be
# the costliest step of a long transcript. This module is the service's only PDF writer.
rl_config.useA85 = 0

CID_FONT = "STSong-Light"
KIND_ORDER = ("visit", "lecture", "workshop", "research", "volunteer", "competition", "other")
KIND_LABELS = {**ACTIVITY_KIND_LABELS, "other": "其他调整"}
_registered: dict[str, str] = {}

PAGE_W, PAGE_H = A4
MARGIN = 15 * mm
CONTENT_W = PAGE_W - 2 * MARGIN
BOTTOM = 18 * mm
ROW_H = 13.0
TABLE_SIZE = 8.5
HEADER_FILL = (0.91, 0.93, 0.97)
RULE_GRAY = 0.72
# (title, width in points, right-aligned)
ACTIVITY_COLUMNS = (("日期", 20 * mm, False), ("活动", 64 * mm, False), ("场馆", 48 * mm, False),
                    ("类别", 22 * mm, False), ("分钟", 12 * mm, True), ("学分", CONTENT_W - 166 * mm, True))
AWARD_COLUMNS = (("日期", 20 * mm, False), ("竞赛", 56 * mm, False), ("级别", 14 * mm, False),
                 ("奖项", 16 * mm, False), ("作品", 58 * mm, False), ("学分", CONTENT_W - 164 * mm, True))


def font_name() -> str:
    """The registered font for the page: an embedded TrueType font if configured, else STSong-Light."""
    path = current_app.config.get("TRANSCRIPT_FONT_PATH")
    key = path or CID_FONT
    name = _registered.get(key)
    if name is None:
        if path:
            from reportlab.pdfbase.ttfonts import TTFont

            name = f"TranscriptFont{len(_registered)}"
            pdfmetrics.registerFont(TTFont(name, str(Path(path)), subfontIndex=0))
        else:
            name = CID_FONT
            pdfmetrics.registerFont(UnicodeCIDFont(CID_FONT))
        _registered[key] = name
    return name


@lru_cache(maxsize=512)
def qr_matrix(data: str) -> tuple[tuple[bool, ...], ...]:
    """The modules of a QR code (error correction M, no quiet zone) for `data`."""
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, border=0)
    code.add_data(data)
    code.make(fit=True)
    return tuple(tuple(row) for row in code.get_matrix())


def _date(value: str | None) -> str:
    return (value or "")[:10]


def activity_rows(entries: list[dict]) -> list[tuple[str, ...]]:
    """Table rows for every entry that is not a competition: stays, their reversals, adjustments."""
    by_id = {e["id"]: e for e in entries}
    out = []
    for entry in entries:
        if entry.get("_origin_only") or entry["source"] == "claim" or entry["competition"]:
            continue
        reversal = entry["kind"] == "reversal"
        origin = by_id.get(entry["reverses_id"], entry) if reversal else entry
        explanation = origin.get("explanation") or {}
        stay = explanation.get("checkin") or {}
        minutes = (explanation.get("inputs") or {}).get("minutes")
        if stay:
            title = ("（撤销）" if reversal else "") + (stay.get("activity_title") or "")
        else:
            own = entry.get("explanation") or {}
            title = own.get("reason") or own.get("summary") or "学分调整"
        out.append((
            _date(entry["occurred_at"]), title, stay.get("venue_name") or "",
            KIND_LABELS.get(entry["activity_kind"] or "other", entry["activity_kind"] or ""),
            "" if minutes is None or entry["kind"] != "credit" else str(minutes), entry["amount"],
        ))
    return out


def competition_rows(entries: list[dict]) -> list[tuple[str, ...]]:
    """Table rows for competition entries (and their reversals when a higher award replaced one)."""
    by_id = {e["id"]: e for e in entries}
    out = []
    for entry in entries:
        if entry.get("_origin_only") or not (entry["source"] == "claim" or entry["competition"]):
            continue
        reversal = entry["kind"] == "reversal"
        origin = by_id.get(entry["reverses_id"], entry) if reversal else entry
        explanation = origin.get("explanation") or {}
        claim = explanation.get("claim") or {}
        inputs = explanation.get("inputs") or {}
        out.append((
            claim.get("awarded_on") or _date(entry["occurred_at"]),
            ("（撤销）" if reversal else "") + (claim.get("competition") or entry["competition"] or ""),
            LEVEL_LABELS.get(inputs.get("level"), ""), AWARD_LABELS.get(inputs.get("award"), ""),
            claim.get("work_title") or "", entry["amount"],
        ))
    return out


def table_entries(student_id: int, school_year: str) -> list[dict]:
    """The year's entries with just what the tables print (and the entries they reverse), read as
    plain values: lighter than ORM objects for a year of hundreds of entries."""
    import json
    from datetime import timedelta

    from sqlalchemy import BigInteger, DateTime, Text, cast, select, type_coerce

    from app.common import fmt_credits
    from app.credits.models import LedgerEntry
    from app.extensions import db

    columns = (LedgerEntry.id, LedgerEntry.kind, type_coerce(LedgerEntry.amount, BigInteger), LedgerEntry.activity_kind,
               LedgerEntry.competition, LedgerEntry.source, LedgerEntry.reverses_id,
               type_coerce(LedgerEntry.occurred_at, DateTime), cast(LedgerEntry.explanation, Text))
    shanghai = timedelta(hours=8)

    def load(condition) -> list[dict]:
        return [
            {"id": id_, "kind": kind, "amount": fmt_credits(cents / 100), "activity_kind": activity_kind,
             "competition": competition, "source": source, "reverses_id": reverses_id,
             "occurred_at": (occurred_at.replace(tzinfo=None) + shanghai).date().isoformat(),
             "explanation": json.loads(explanation) if explanation else {}}
            for id_, kind, cents, activity_kind, competition, source, reverses_id, occurred_at, explanation
            in db.session.execute(select(*columns).where(condition).order_by(LedgerEntry.seq)).all()
        ]

    entries = load((LedgerEntry.student_id == student_id) & (LedgerEntry.school_year == school_year))
    have = {e["id"] for e in entries}
    missing = {e["reverses_id"] for e in entries if e["reverses_id"] and e["reverses_id"] not in have}
    if missing:  # a reversal of an entry of an earlier year: its origin tells what was reversed
        entries = [*load(LedgerEntry.id.in_(missing)), *entries]
        for origin in entries[:len(missing)]:
            origin["_origin_only"] = True
    return entries


class _Writer:
    """Text and rules on a canvas, one PDF operator per string, with page breaks and a footer."""

    def __init__(self, canvas: Canvas, font: str, footer_left: str, footer_right: str):
        self.c = canvas
        self.font = pdfmetrics.getFont(font)
        self.font_name = font
        self.cid = not getattr(self.font, "_dynamicFont", False)
        self.internal = canvas._doc.getInternalFontName(font) if self.cid else None
        self.footer_left, self.footer_right = footer_left, footer_right
        self.page = 1
        self.y = PAGE_H - 14 * mm
        self._widths: dict[tuple[str, float], float] = {}

    def width(self, text: str, size: float) -> float:
        key = (text, size)
        found = self._widths.get(key)
        if found is None:
            found = self._widths[key] = self.font.stringWidth(text, size)
        return found

    def _shows(self, text: str, size: float) -> str:
        if self.cid:
            return f"{self.internal} {size:g} Tf <{text.encode('utf-16-be', 'replace').hex()}> Tj"
        doc = self.c._doc
        return " ".join(f"{self.font.getSubsetInternalName(subset, doc)} {size:g} Tf <{chunk.hex()}> Tj"
                        for subset, chunk in self.font.splitString(text, doc))

    def text(self, x: float, y: float, text: str, size: float, *, right: bool = False, gray: float | None = None):
        if not text:
            return
        if right:
            x -= self.width(text, size)
        color = f"{gray:.2f} g " if gray is not None else ""
        self.c.addLiteral(f"BT {color}{x:.2f} {y:.2f} Td {self._shows(text, size)} ET")

    def fit(self, text: str, size: float, width: float) -> str:
        """`text` cut with an ellipsis to fit `width` (table cells do not wrap)."""
        text = " ".join((text or "").split())
        if (self.cid and len(text) * size <= width) or self.width(text, size) <= width:
            return text  # (no CID glyph is wider than 1 em: short strings need no measuring)
        while text and self.width(text + "…", size) > width:
            text = text[:-1]
        return text + "…"

    def wrap(self, text: str, size: float, width: float) -> list[str]:
        """Lines of `text` no wider than `width`, broken between characters (Chinese has no spaces)."""
        lines, line = [], ""
        for char in text:
            if line and self.width(line + char, size) > width:
                lines.append(line)
                line = char
            else:
                line += char
        return [*lines, line] if line else lines

    def need(self, height: float) -> None:
        """Start a new page unless `height` still fits above the bottom margin."""
        if self.y - height < BOTTOM:
            self.new_page()

    def new_page(self) -> None:
        self.finish_page()
        self.c.showPage()
        self.page += 1
        self.y = PAGE_H - 14 * mm

    def finish_page(self):
        self.text(MARGIN, 9 * mm, self.footer_left, 7.5, gray=0.4)
        self.text(PAGE_W - MARGIN, 9 * mm, f"{self.footer_right} · 第 {self.page} 页", 7.5, right=True, gray=0.4)

    def heading(self, text: str):
        self.need(24 + 2 * ROW_H)
        self.y -= 24
        self.text(MARGIN, self.y + 5, text, 12)

    def table(self, columns, rows, *, size: float = TABLE_SIZE):
        """A table that breaks across pages, repeating its header row."""
        widths = [w for _, w, _ in columns]
        cut = [[self.fit(str(cell), size, w - 6) for cell, w in zip(row, widths, strict=True)] for row in rows]
        index = 0
        while True:
            self.need(2 * ROW_H)
            top = self.y
            room = int((self.y - BOTTOM) // ROW_H) - 1
            chunk = cut[index:index + max(room, 1)]
            self._table_chunk(columns, chunk, top, size)
            self.y = top - ROW_H * (len(chunk) + 1)
            index += len(chunk)
            if index >= len(cut):
                break
            self.new_page()

    def _table_chunk(self, columns, chunk, top, size):
        height = ROW_H * (len(chunk) + 1)
        left, right = MARGIN, MARGIN + CONTENT_W
        ops = [f"q {HEADER_FILL[0]} {HEADER_FILL[1]} {HEADER_FILL[2]} rg {left:.2f} {top - ROW_H:.2f} {CONTENT_W:.2f} "
               f"{ROW_H:.2f} re f {RULE_GRAY} G 0.4 w"]
        for i in range(len(chunk) + 2):
            y = top - i * ROW_H
            ops.append(f"{left:.2f} {y:.2f} m {right:.2f} {y:.2f} l")
        x = left
        for _, width, _ in [*columns, ("", 0, False)]:
            ops.append(f"{x:.2f} {top:.2f} m {x:.2f} {top - height:.2f} l")
            x += width
        ops.append("S Q")
        self.c.addLiteral("\n".join(ops))
        baseline = 3.8
        for row_index, row in enumerate([[title for title, _, _ in columns], *chunk]):
            y = top - (row_index + 1) * ROW_H + baseline
            x = MARGIN
            for cell, (_, width, right) in zip(row, columns, strict=True):
                cell_size = size
                if row_index == 0:  # a header too long for its column is set smaller, never cut
                    natural = self.width(cell, size)
                    if natural > width - 6:
                        cell_size = max(5.0, round(size * (width - 6) / natural, 2))
                if right:
                    self.text(x + width - 3, y, cell, cell_size, right=True)
                else:
                    self.text(x + 3, y, cell, cell_size)
                x += width

    def qr(self, data: str, x: float, y: float, size: float):
        """A vector QR code of `data` with its lower-left corner at (x, y)."""
        matrix = qr_matrix(data)
        n = len(matrix)
        module = size / n
        ops = ["q 0 g"]
        for r, row in enumerate(matrix):
            top = y + size - (r + 1) * module
            for col, dark in enumerate(row):
                if dark:
                    ops.append(f"{x + col * module:.3f} {top:.3f} {module:.3f} {module:.3f} re")
        ops.append("f Q")
        self.c.addLiteral("\n".join(ops))


def render(transcript: dict, entries: list[dict] | None = None) -> bytes:
    """The transcript (with its "credential") as PDF bytes: A4, Chinese, a QR to its verify page.
    `entries` (from table_entries) stand in for the transcript's own when it has none."""
    font = font_name()
    credential = transcript.get("credential") or {}
    student = transcript["student"]
    year = transcript["school_year"]
    public_id = credential.get("id") or "—"
    buffer = io.BytesIO()
    canvas = Canvas(buffer, pagesize=A4, initialFontName=font)
    canvas.setTitle(f"{student['name']} {year} 学年科普教育学分报告单")
    canvas.setAuthor(student["school_name"])
    canvas.setSubject("科普教育学分报告单")
    canvas.setCreator("科普教育学分制")
    w = _Writer(canvas, font, f"{student['school_name']} · {student['name']} · {year} 学年科普教育学分报告单",
                f"凭证 {public_id}")

    # Header: who, which year, the verdict; the QR code on the right.
    qr_size = 32 * mm
    qr_x, qr_top = PAGE_W - MARGIN - qr_size, w.y + 2
    if credential.get("verify_url"):
        w.qr(credential["verify_url"], qr_x, qr_top - qr_size, qr_size)
        w.text(qr_x + qr_size / 2 - w.width("扫码验证真伪", 8) / 2, qr_top - qr_size - 11, "扫码验证真伪", 8, gray=0.3)
    text_width = CONTENT_W - qr_size - 6 * mm
    w.text(MARGIN, w.y - 4, w.fit(student["school_name"], 10, text_width), 10)
    w.text(MARGIN, w.y - 28, "科普教育学分报告单", 20)
    status = "已达到年度要求" if transcript["met"] else f"未达到年度要求（{transcript['missing']['hint']}）"
    lines = [
        f"学生：{student['name']}　　学号：{student['student_number']}",
        f"年级班级：{student['grade']} 年级 {student['class_name']}　　学年：{year}",
        f"本学年科普学分：{transcript['total']} 学分　／　年度要求：{transcript['required']} 学分",
        f"结论：{status}",
    ]
    y = w.y - 48
    for line in lines:
        for part in w.wrap(line, 10, text_width):
            w.text(MARGIN, y, part, 10)
            y -= 15
    w.y = min(y, qr_top - qr_size - 16) - 4

    by_kind = transcript["by_kind"]
    kinds = [k for k in KIND_ORDER if k in by_kind]
    titles = ["类别", *[KIND_LABELS.get(k, k) for k in kinds], "第一学期", "第二学期", "合计"]
    values = ["学分", *[by_kind[k] for k in kinds], transcript["by_term"].get("1", "0.00"),
              transcript["by_term"].get("2", "0.00"), transcript["total"]]
    each = CONTENT_W / len(titles)
    w.heading("学分汇总")
    w.table([(t, each, False) for t in titles], [values], size=9)

    entries = transcript["entries"] if entries is None else entries
    count = credential.get("entries", len(entries))
    rows = activity_rows(entries)
    w.heading(f"科普活动记录（{len(rows)} 条）")
    if rows:
        w.table(ACTIVITY_COLUMNS, rows)
    else:
        w.y -= ROW_H
        w.text(MARGIN, w.y, "本学年暂无科普活动记录。", 10)
    awards = competition_rows(entries)
    w.heading(f"竞赛获奖（{len(awards)} 项）")
    if awards:
        w.table(AWARD_COLUMNS, awards)
    else:
        w.y -= ROW_H
        w.text(MARGIN, w.y, "本学年暂无竞赛获奖记录。", 10)

    notes = (
        f"本报告单由学校根据不可篡改的学分记录生成，并附数字签名凭证（编号 {public_id}，签发于 "
        f"{_date(credential.get('valid_from'))}，有效期至 {_date(credential.get('valid_until'))}）。扫描右上角二维码"
        f"或访问 {credential.get('verify_url', '')} 即可核验真伪，无需联系学校。",
        f"规则版本 {transcript['rule_version']}；签名密钥 {credential.get('kid', '—')}；学分记录 {count} 条。",
    )
    lines = [part for note in notes for part in w.wrap(note, 8, CONTENT_W)]
    w.need(10 + 11 * len(lines))
    w.y -= 10
    for part in lines:
        w.y -= 11
        w.text(MARGIN, w.y, part, 8, gray=0.27)
    w.finish_page()
    canvas.showPage()
    canvas.save()
    return buffer.getvalue()
