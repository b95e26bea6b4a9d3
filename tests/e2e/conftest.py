"""Browser tests: a real server on 127.0.0.1, a fresh SQLite database, Debian's chromium via Playwright.

* The server is werkzeug's `make_server` in a thread, serving an app built from the testing settings
  on its own SQLite file (never TEST_DATABASE_URL: the rest of the suite owns that database), migrated
  with `flask_migrate.upgrade()`. Data is created with tests/factories.py and really
  committed, because the server's threads must see it; so the suite-wide rolled-back `db_session`
  fixture is switched off here. Every test makes its own pupils, venues and accounts.
* The browser is /usr/bin/chromium (apt-get install chromium), launched headless by Playwright with
  a fresh temporary profile. `playwright install` is never needed. Without chromium (or without the
  playwright package) the browser tests are skipped with the reason.
* `check_page` fails a test on a console error, an uncaught script error, a broken image, an English
  placeholder or a leaked `None`/`undefined`, and saves a screenshot under tests/e2e/screenshots/.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import pytest

from config.settings import Testing

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
PHONE = {"width": 360, "height": 780}  # the narrowest phone the pages are made for
LEAKS = re.compile(r"\b(None|undefined|NaN|null|Traceback|True|False)\b")

_tmp = tempfile.mkdtemp(prefix="ledger-e2e-")


class E2EConfig(Testing):
    SQLALCHEMY_DATABASE_URI = f"sqlite:///{Path(_tmp) / 'e2e.sqlite3'}"
    EVIDENCE_DIR = str(Path(_tmp) / "evidence")
    PUBLIC_BASE_URL = "http://127.0.0.1"  # set to the live server's address once it listens
    LOG_LEVEL = "WARNING"


@pytest.fixture(autouse=True)
def db_session():
    """Switch off the suite's per-test rollback: the live server must see committed data."""
    yield None


@pytest.fixture(scope="session")
def live_app():
    from flask_migrate import upgrade

    from app import create_app
    from app.extensions import db

    application = create_app(E2EConfig)
    with application.app_context():
        upgrade()
        db.session.remove()
    yield application
    shutil.rmtree(_tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def live_server(live_app):
    """The app served on 127.0.0.1 (a free port) by werkzeug in a background thread."""
    import logging

    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = make_server("127.0.0.1", 0, live_app, threaded=True)
    url = f"http://127.0.0.1:{server.server_port}"
    live_app.config["PUBLIC_BASE_URL"] = url
    thread = threading.Thread(target=server.serve_forever, name="e2e-server", daemon=True)
    thread.start()
    yield SimpleNamespace(url=url, app=live_app)
    server.shutdown()
    thread.join(5)


@pytest.fixture
def data(live_server):
    """A context manager for making test data: an app context whose work is committed and whose
    session is closed on exit (an open SQLite transaction here would block the server's writes)."""
    from app.extensions import db

    @contextmanager
    def session():
        with live_server.app.app_context():
            try:
                yield db.session
                db.session.commit()
            finally:
                db.session.remove()

    return session


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium to run the browser tests")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (requirements-dev.txt)")
    with sync_api.sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield instance
        instance.close()


class Watched:
    """A page with every console error and uncaught exception collected."""

    def __init__(self, page, base_url: str):
        self.page = page
        self.base_url = base_url
        self.errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))

    def _console(self, message) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text}")

    def goto(self, path: str):
        url = path if path.startswith("http") else self.base_url + path
        return self.page.goto(url, wait_until="load")

    def login(self, username: str, password: str):
        from tests.factories import PASSWORD

        if not self.page.url.split("?")[0].endswith("/login"):
            self.goto("/login")
        self.page.fill('input[name="username"]', username)
        self.page.fill('input[name="password"]', password or PASSWORD)
        with self.page.expect_navigation():
            self.page.click('form button[type="submit"]')

    def check(self, name: str, *, full_page: bool = True) -> Path:
        """No console errors, no broken images, no English placeholder, no leaked None; screenshot."""
        page = self.page
        page.wait_for_load_state("load")
        broken = page.evaluate(
            "() => Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src)"
        )
        assert broken == [], f"broken images on {page.url}: {broken}"
        placeholders = page.evaluate(
            "() => Array.from(document.querySelectorAll('[placeholder]')).map(e => e.getAttribute('placeholder'))"
        )
        english = [p for p in placeholders if re.search(r"[A-Za-z]", p or "")]
        assert english == [], f"English placeholders on {page.url}: {english}"
        assert page.evaluate("() => document.documentElement.lang") == "zh-CN"
        text = page.inner_text("body")
        leak = LEAKS.search(text)
        assert leak is None, f"{leak.group(0)!r} shown on {page.url}"
        assert self.errors == [], f"console errors on {page.url}: {self.errors}"
        overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"{page.url} scrolls sideways by {overflow}px"
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        return path


@pytest.fixture
def open_page(browser, live_server):
    """open_page(viewport=PHONE) → a Watched page in a fresh browser context (own cookies, storage)."""
    contexts = []

    def make(viewport: dict | None = None, **options):
        context = browser.new_context(viewport=viewport or PHONE, locale="zh-CN", timezone_id="Asia/Shanghai",
                                      **options)
        context.set_default_timeout(10_000)
        contexts.append(context)
        return Watched(context.new_page(), live_server.url)

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def code_url(live_server):
    """code_url(activity_id, "entry"|"exit") → the URL a venue's QR code shows right now."""
    from app.db import utcnow
    from app.venues import codes

    def make(activity_id: int, direction: str = "entry") -> str:
        with live_server.app.app_context():
            return codes.venue_code(activity_id, direction, utcnow()).url

    return make
