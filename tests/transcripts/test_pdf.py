"""The printable transcript: Chinese text that extracts back, totals, tables, and a QR code that
decodes (from the rendered page) to the credential's verify URL."""

from __future__ import annotations

import io
import os
from datetime import timedelta

import pypdfium2
import pytest
import zxingcpp
from pypdf import PdfReader

from app.credits.rules import local_date
from tests import factories as f
from tests.transcripts.conftest import TERM1, YEAR, approved_claim, credited_stay, get


def pdf_of(client, account, pupil, year=YEAR):
    res = get(client, account, f"/api/v1/students/{pupil.id}/transcript?school_year={year}&format=pdf")
    assert res.status_code == 200, res.get_data(as_text=True)[:500]
    assert res.mimetype == "application/pdf" and res.data.startswith(b"%PDF-")
    assert res.headers["Cache-Control"] == "no-store" and "inline" in res.headers["Content-Disposition"]
    return res.data


def text_of(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def first_page_png(data: bytes, scale: float = 3):
    document = pypdfium2.PdfDocument(data)
    try:
        page = document[0]
        width, height = page.get_size()
        image = page.render(scale=scale).to_pil()
    finally:
        document.close()
    return (width, height), image


def test_pdf_names_the_pupil_and_totals_and_its_qr_opens_the_verify_page(client, school, tmp_path):
    data = pdf_of(client, school["parent"], school["ming"])
    text = text_of(data)
    for expected in ("科普教育学分报告单", "深圳市福田区实验小学", "王小明", "2025001", "五(1)班", YEAR,
                     "7.30", "8.00", "未达到年度要求", "还差 0.70 学分",
                     "火星探测科普讲座", "深圳科技馆", "超级计算机动手实验", "国家超级计算深圳中心",
                     "深圳市青少年科技创新大赛", "市级", "一等奖", "智能垃圾分类机器人", "3.00", "1.80"):
        assert expected in text, expected
    assert f"{local_date(TERM1).isoformat()}" in text  # the activity table's date column

    (width, height), image = first_page_png(data)
    assert (round(width), round(height)) == (595, 842)  # A4 in points
    if os.environ.get("TRANSCRIPT_PNG_DIR"):  # to look at the page: TRANSCRIPT_PNG_DIR=/tmp pytest …
        image.save(os.path.join(os.environ["TRANSCRIPT_PNG_DIR"], "transcript-page1.png"))
    codes = zxingcpp.read_barcodes(image)
    assert len(codes) == 1 and codes[0].format == zxingcpp.BarcodeFormat.QRCode
    url = codes[0].text
    credential = get(client, school["parent"], f"/api/v1/students/{school['ming'].id}/transcript?school_year={YEAR}"
                     ).json["credential"]
    assert url == credential["verify_url"] and url.startswith("https://ledger.example.test/verify/")
    assert credential["id"] in text  # the id printed for typing in by hand
    page = client.get(url.removeprefix("https://ledger.example.test"))
    assert page.status_code == 200 and "验证通过" in page.get_data(as_text=True)


def test_pdf_of_a_long_year_spans_pages_and_keeps_every_row(client, school):
    pupil = school["hua"]
    for day in range(1, 70):  # one 60-minute lecture a day at alternating venues, some capped to 0.00
        credited_stay(pupil, school["lecture"] if day % 2 else school["workshop"], TERM1 + timedelta(days=day), 60)
    approved_claim(pupil, school["admin"], competition="全国青少年机器人竞赛", level="national", award="second",
                   work_title="仿生机器鱼")
    data = pdf_of(client, school["teacher"], pupil)
    reader = PdfReader(io.BytesIO(data))
    assert len(reader.pages) >= 2
    text = text_of(data)
    assert "李华" in text and "全国青少年机器人竞赛" in text and "国家级" in text and "二等奖" in text
    assert text.count("火星探测科普讲座") >= 35
    assert "第 2 页" in text and "科普活动记录（70 条）" in text


def test_pdf_for_a_year_without_records(client, school):
    pupil = f.student(school["class"], name="赵新")
    text = text_of(pdf_of(client, school["admin"], pupil))
    assert "赵新" in text and "本学年暂无科普活动记录" in text and "本学年暂无竞赛获奖记录" in text


def test_pdf_escapes_names_and_embeds_a_configured_truetype_font(app, client, school, monkeypatch):
    """TRANSCRIPT_FONT_PATH embeds a TrueType font (reportlab's bundled Vera stands in for a CJK font)."""
    from pathlib import Path

    import reportlab

    vera = Path(reportlab.__file__).parent / "fonts" / "Vera.ttf"
    monkeypatch.setitem(app.config, "TRANSCRIPT_FONT_PATH", str(vera))
    pupil = f.student(school["class"], name="Tom <b>& Jerry", number="X-42")
    data = pdf_of(client, school["admin"], pupil)
    reader = PdfReader(io.BytesIO(data))
    fonts = reader.pages[0]["/Resources"]["/Font"]
    descriptors = [font.get_object().get("/FontDescriptor") for font in fonts.values()]
    assert any(d is not None and "/FontFile2" in d.get_object() for d in descriptors)  # embedded subset
    text = text_of(data)
    assert "Tom <b>& Jerry" in text and "X-42" in text


def test_pdf_scope(client, school):
    url = f"/api/v1/students/{school['ming'].id}/transcript?school_year={YEAR}&format=pdf"
    assert get(client, school["other_parent"], url).status_code == 404
    assert get(client, school["other_admin"], url).status_code == 404
    assert get(client, school["student"], url + "x").status_code == 422


@pytest.mark.parametrize("year", ["2025", "2025-2027"])
def test_transcript_school_year_is_checked(client, school, year):
    res = get(client, school["student"], f"/api/v1/students/{school['ming'].id}/transcript?school_year={year}")
    assert res.status_code == 422
