"""The dashboard in a real headless browser (Playwright driving Debian's Chromium).

Set LAMINA_SCREENSHOTS=docs/screenshots to refresh the screenshots kept in the repository.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import make_zip
from tests.integration.conftest import ACCESS_KEY, SECRET_KEY

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
APP = "def handler(event, context):\n    print('browser-saw', event.get('who'))\n    return {'hello': event.get('who')}\n"

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")

# Without the background-networking flags Chromium dials out at start, which this machine refuses.
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


@pytest.fixture
def page(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            # The page's CSP forbids eval; wait_for_function needs it (the product keeps its CSP).
            context = browser.new_context(viewport={"width": 1440, "height": 900}, bypass_csp=True)
            yield context.new_page()
        finally:
            browser.close()


def _shot(page, tmp_path: Path, name: str) -> None:
    folder = Path(os.environ.get("LAMINA_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def test_login_invoke_and_see_the_chart_and_log_line(server, lam, fname, page, tmp_path):
    lam.create_function(FunctionName=fname, Runtime="python3.11", Handler="app.handler",
                        Role="arn:aws:iam::000000000000:role/x", Code={"ZipFile": make_zip({"app.py": APP})})

    page.goto(server.url + "/ui")
    page.wait_for_selector("#login:not([hidden])")
    _shot(page, tmp_path, "dashboard-login")
    page.fill("#akid", ACCESS_KEY)
    page.fill("#secret", "not-the-secret")
    page.click("#go")
    page.wait_for_function("document.querySelector('#loginerr').textContent.length > 0")
    assert page.is_visible("#login")

    page.fill("#secret", SECRET_KEY)
    page.click("#go")
    page.wait_for_selector("#app:not([hidden])")
    assert not page.is_visible("#login")
    row = page.locator(f"tr.fn[data-name='{fname}']")
    row.wait_for()
    assert row.locator("td").nth(1).inner_text() == "0"  # no requests yet

    row.click()
    page.wait_for_selector(f"#charttitle:has-text('{fname}')")
    page.fill("#payload", '{"who": "playwright"}')
    page.click("#invoke")
    page.wait_for_function("document.querySelector('#result').textContent.startsWith('OK in')")
    result = page.inner_text("#result")
    assert '{"hello": "playwright"}' in result and "REPORT RequestId:" in result

    # The live log tail shows the function's own line; the next refresh counts the request and draws it.
    page.wait_for_function("document.querySelector('#logs').textContent.includes('browser-saw playwright')",
                           timeout=15_000)
    page.wait_for_function(
        f"document.querySelector(\"tr.fn[data-name='{fname}'] td:nth-child(2)\").textContent === '1'",
        timeout=15_000)
    # The charts are redrawn right after the table: the invocations chart's scale label reads 1 (its peak).
    page.wait_for_function("document.querySelector('#charts svg text.lbl').textContent === '1'", timeout=15_000)
    points = page.locator("#charts svg polyline").first.get_attribute("points") or ""
    assert len(points.split()) == 60, "one point per minute of the window"
    _shot(page, tmp_path, "dashboard")
