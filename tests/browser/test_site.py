"""The static site in a real browser, with no network: headless Chromium loads each page from a loopback HTTP
server while every request to any other host is aborted, and checks that plotly figures are drawn, saved widgets
are rendered, maths is typeset and nothing logs an error. Screenshots go to test-artifacts/docs-site/."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlparse

import pytest
from docsite import FIXTURE_STEM, ROOT, fixture_site, smoke_site

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.xdist_group("docs-site")]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
ARTIFACTS = ROOT / "test-artifacts" / "docs-site"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
LESSONS = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
RENDER_TIMEOUT_MS = 30_000

# What each page shows once its scripts have run, measured in the page.
_MEASURE = """() => {
  const figs = Array.from(document.querySelectorAll('.plotly-graph-div'));
  const views = Array.from(document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]'));
  const rendered = views.filter(s => {
    const area = s.previousElementSibling;  // html-manager inserts a .widget-subarea before each view script
    const w = area && area.classList.contains('widget-subarea') && area.querySelector('.jupyter-widgets');
    return w && w.getBoundingClientRect().width > 0 && w.getBoundingClientRect().height > 0;
  });
  return {
    figures: figs.length,
    figuresDrawn: figs.filter(f => f.querySelector('.main-svg') && f.getBoundingClientRect().height > 0).length,
    widgets: views.length,
    widgetsRendered: rendered.length,
    maths: document.querySelectorAll('.math, span.math, div.math').length,
    mathsTypeset: document.querySelectorAll('mjx-container').length,
    title: document.title,
    // the kit's own tables (claims ledger, environment) must fit the page, not scroll sideways
    overflowingTables: Array.from(document.querySelectorAll('table.transferlab-ledger, table.transferlab-env'))
      .filter(t => t.scrollWidth > t.parentElement.clientWidth + 1).length,
  };
}"""
_READY = """() => {
  const figs = Array.from(document.querySelectorAll('.plotly-graph-div'));
  const views = document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]');
  const maths = document.querySelectorAll('.math').length;
  return figs.every(f => f.querySelector('.main-svg'))
    && document.querySelectorAll('.widget-subarea .jupyter-widgets').length >= views.length
    && (maths === 0 || document.querySelectorAll('mjx-container').length > 0);
}"""


@contextmanager
def serve(directory: Path) -> Iterator[str]:
    """Serve ``directory`` on a free loopback port; yields the base URL."""

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def chromium():
    if not CHROMIUM.exists():
        pytest.skip("the browser tests need Debian's chromium at /usr/bin/chromium (make browser-deps)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def visit(browser, base_url: str, page_path: str, screenshot: Path) -> dict:
    """Load one page offline, wait for its figures, widgets and maths, screenshot it, and report what it saw."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, service_workers="block")
    blocked: list[str] = []
    errors: list[str] = []

    def only_loopback(route):
        url = route.request.url
        if urlparse(url).scheme in ("data", "blob") or urlparse(url).hostname in LOOPBACK:
            route.continue_()
        else:
            blocked.append(url)
            route.abort()

    context.route("**/*", only_loopback)
    page = context.new_page()
    in_flight: set = set()  # http(s) requests only: widget images are blob: URLs that Chromium never reports
    # as finished, so Playwright's "networkidle" never comes on pages with an ipywidgets Image
    page.on("request", lambda req: in_flight.add(req.url) if urlparse(req.url).scheme in ("http", "https") else None)
    page.on("requestfinished", lambda req: in_flight.discard(req.url))
    page.on("requestfailed", lambda req: in_flight.discard(req.url))
    page.on("console", lambda msg: errors.append(f"console.{msg.type}: {msg.text}") if msg.type == "error" else None)
    page.on("pageerror", lambda err: errors.append(f"uncaught: {err}"))
    page.on("requestfailed", lambda req: errors.append(f"request failed: {req.url} ({req.failure})")
            if urlparse(req.url).hostname in LOOPBACK else None)
    try:
        response = page.goto(base_url + page_path, wait_until="load")
        assert response is not None and response.ok, f"{page_path}: HTTP {response.status if response else None}"
        try:
            page.wait_for_function(_READY, timeout=RENDER_TIMEOUT_MS)
        except Exception:  # the measurement below says what did not render
            pass
        for _ in range(RENDER_TIMEOUT_MS // 100):  # then let every http request settle
            if not in_flight:
                break
            page.wait_for_timeout(100)
        assert not in_flight, f"{page_path}: requests still open after {RENDER_TIMEOUT_MS} ms: {sorted(in_flight)}"
        page.wait_for_timeout(300)
        seen = page.evaluate(_MEASURE)
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(screenshot), full_page=True)
    finally:
        context.close()
    return {**seen, "blocked": blocked, "errors": errors}


def check(seen: dict, page_path: str, *, need_figures: bool = False, need_widgets: bool = False):
    assert not seen["blocked"], f"{page_path} tried to load external URLs: {seen['blocked']}"
    assert not seen["errors"], f"{page_path} logged errors: {seen['errors']}"
    assert seen["figuresDrawn"] == seen["figures"], f"{page_path}: plotly figures not drawn: {seen}"
    assert seen["widgetsRendered"] == seen["widgets"], f"{page_path}: widgets not rendered: {seen}"
    assert seen["maths"] == 0 or seen["mathsTypeset"] > 0, f"{page_path}: maths not typeset: {seen}"
    assert seen["overflowingTables"] == 0, f"{page_path}: a ledger/environment table is wider than the page: {seen}"
    if need_figures:
        assert seen["figures"] >= 1, f"{page_path}: expected a plotly figure, found none"
    if need_widgets:
        assert seen["widgets"] >= 1, f"{page_path}: expected a widget, found none"


def test_fixture_site_renders_offline(chromium):
    """A lesson with a plotly figure, a widget and maths: everything renders from the site's own files."""
    site = fixture_site()
    with serve(site.html) as base:
        for path, needs in [(f"lessons/{FIXTURE_STEM}.html", dict(need_figures=True, need_widgets=True)),
                            ("index.html", {}), ("claims.html", {})]:
            seen = visit(chromium, base, path, ARTIFACTS / "fixture" / (path.replace("/", "_") + ".png"))
            check(seen, path, **needs)
            if path.startswith("lessons/"):
                assert seen["mathsTypeset"] >= 1


@pytest.fixture(scope="module")
def lessons_site():
    if not LESSONS:
        pytest.skip("no lesson notebooks yet in notebooks/")
    return smoke_site()


@pytest.mark.parametrize("page_path", ["index.html", "claims.html"] + [f"lessons/{s}.html" for s in LESSONS])
def test_lessons_site_renders_offline(chromium, lessons_site, page_path):
    with serve(lessons_site.html) as base:
        seen = visit(chromium, base, page_path, ARTIFACTS / "smoke" / (page_path.replace("/", "_") + ".png"))
    print(f"{page_path}: {seen['figures']} plotly figures, {seen['widgets']} widgets, "
          f"{seen['mathsTypeset']} formulas typeset")
    check(seen, page_path)
    if page_path == "claims.html":
        assert "Claims ledger" in seen["title"]


def test_the_check_fails_when_the_renderers_are_missing(chromium, tmp_path):
    """Negative control: without the local plotly.js and widget renderer the same page must fail the check."""
    import shutil

    broken = tmp_path / "html"
    shutil.copytree(fixture_site().html, broken)
    (broken / "_static" / "vendor" / "plotly" / "plotly.min.js").unlink()
    (broken / "_static" / "vendor" / "html-manager" / "embed.js").unlink()
    path = f"lessons/{FIXTURE_STEM}.html"
    with serve(broken) as base:
        seen = visit(chromium, base, path, tmp_path / "broken.png")
    assert seen["figures"] == 1 and seen["figuresDrawn"] == 0
    assert seen["widgets"] == 1 and seen["widgetsRendered"] == 0
    errors = "\n".join(seen["errors"])
    assert "plotly.min.js" in errors and "Plotly is not defined" in errors
    with pytest.raises(AssertionError, match="logged errors"):
        check(seen, path)
