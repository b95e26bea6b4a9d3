"""The README's screenshots of the five homes, taken in the browser from the demo city.

Not part of the ordinary run (seeding the demo city takes a while): set E2E_README_SCREENSHOTS=1.
The pages go through the same checks as every browser test; the PNGs (390 px wide, palette-
compressed, each under 150 KB) are written to docs/screenshots/.
"""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path

import pytest

from tests.e2e.conftest import E2EConfig, Watched, _tmp

pytestmark = pytest.mark.skipif(os.environ.get("E2E_README_SCREENSHOTS") != "1",
                                reason="set E2E_README_SCREENSHOTS=1 to retake docs/screenshots/")

DOCS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
HOMES = (("student", "student", "/student"), ("guardian", "parent", "/guardian"),
         ("teacher", "teacher", "/teacher"), ("venue", "venue", "/venue"), ("bureau", "city", "/bureau"))
MAX_BYTES = 150_000
MAX_HEIGHT = 1800  # the top of a long page is what a README reader needs


class DemoConfig(E2EConfig):
    SQLALCHEMY_DATABASE_URI = f"sqlite:///{Path(_tmp) / 'demo.sqlite3'}"


@pytest.fixture(scope="module")
def demo_server():
    from flask_migrate import upgrade
    from werkzeug.serving import make_server

    from app import create_app
    from app.extensions import db
    from app.seed import seed_demo

    application = create_app(DemoConfig)
    with application.app_context():
        upgrade()
        seed_demo(lambda *_: None)
        db.session.remove()
    server = make_server("127.0.0.1", 0, application, threaded=True)
    url = f"http://127.0.0.1:{server.server_port}"
    application.config["PUBLIC_BASE_URL"] = url
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield url
    server.shutdown()


def _small_png(data: bytes) -> bytes:
    from PIL import Image

    image = Image.open(io.BytesIO(data)).convert("RGB")
    if image.height > MAX_HEIGHT:
        image = image.crop((0, 0, image.width, MAX_HEIGHT))
    for colors in (64, 32, 16):
        out = io.BytesIO()
        image.quantize(colors=colors, method=Image.Quantize.MEDIANCUT).save(out, format="PNG", optimize=True)
        if out.tell() <= MAX_BYTES:
            break
    return out.getvalue()


@pytest.mark.parametrize("name, username, path", HOMES)
def test_home_screenshot(browser, demo_server, name, username, path):
    from app.seed import DEMO_PASSWORD

    context = browser.new_context(viewport={"width": 390, "height": 844}, locale="zh-CN",
                                  timezone_id="Asia/Shanghai")
    try:
        page = Watched(context.new_page(), demo_server)
        page.login(username, DEMO_PASSWORD)
        page.goto(path)
        shot = page.check(f"readme-{name}")
        png = _small_png(shot.read_bytes())
        assert len(png) <= MAX_BYTES
        DOCS.mkdir(parents=True, exist_ok=True)
        (DOCS / f"{name}.png").write_bytes(png)
    finally:
        context.close()
