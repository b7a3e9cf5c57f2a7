"""The static site: its pieces (plotly renderer, lesson summaries, ledger loading, smoke injection, the offline
grep), then two smoke builds -- a fixture lesson that exercises every renderer, and the real lessons -- checked
for rendered outputs, the generated claims ledger, the landing page and the absence of external URLs."""

from __future__ import annotations

import importlib.util
import json
import re
import runpy
import shutil
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest
from docsite import FIXTURE_STEM, ROOT, external_references, fixture_notebook, fixture_site, run_build, smoke_site

sys.path.insert(0, str(ROOT / "docs" / "_ext"))
import transferlab_docs as ext  # noqa: E402

_spec = importlib.util.spec_from_file_location("docs_build", ROOT / "docs" / "build.py")
build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build)

LESSONS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _figure_payload(html: str) -> dict:
    m = re.search(r"var fig = (\{.*?\});\n", html, re.S)
    assert m, "no figure payload in the rendered HTML"
    return json.loads(m.group(1))


# ------------------------------------------------------------------------------------------ pieces (fast)
def test_plotly_html_round_trips_the_figure_and_cannot_close_its_script():
    fig = {"data": [{"type": "scatter", "y": [1, 2], "name": "</script><script>alert(1)</script>"}],
           "layout": {"title": {"text": "t"}, "height": 300}, "config": {"scrollZoom": True}}
    html = ext.plotly_html(fig, "fig-1")
    assert html.count("</script>") == 1 and html.rstrip().endswith("</script>")
    assert 'id="fig-1"' in html and 'Plotly.newPlot("fig-1"' in html and "height:300px" in html
    payload = _figure_payload(html)  # JSON reads "<\/" back as "</": the figure survives intact
    assert payload["data"] == fig["data"] and payload["layout"] == fig["layout"]
    assert payload["config"] == {"responsive": True, "displaylogo": False, "scrollZoom": True}


@pytest.mark.parametrize("bad", [{"layout": {}}, [1, 2], "figure"])
def test_plotly_html_rejects_what_is_not_a_figure(bad):
    with pytest.raises(ValueError, match="'data'"):
        ext.plotly_html(bad, "x")


def _write_nb(path: Path, *cells) -> Path:
    nbformat.write(nbformat.v4.new_notebook(cells=list(cells)), path)
    return path


def test_lesson_summary_reads_title_and_goals(tmp_path):
    md = nbformat.v4.new_markdown_cell(
        "# 01 Which layers to freeze\n\nIntro.\n\n**What you will learn**\n\n- the advice by data size\n"
        "* why it fails at\n  low similarity\n1. the cost\n\n## Claims under test\n- not a goal\n")
    info = ext.lesson_summary(_write_nb(tmp_path / "01_freeze.ipynb", md))
    assert info == {"stem": "01_freeze", "title": "01 Which layers to freeze", "intro": "",
                    "goals": ["the advice by data size", "why it fails at low similarity", "the cost"]}


def test_lesson_summary_falls_back_to_the_first_paragraph(tmp_path):
    md = nbformat.v4.new_markdown_cell("# 02 SWA\n\nStochastic weight averaging, measured.\n\nMore text.")
    info = ext.lesson_summary(_write_nb(tmp_path / "02_swa.ipynb", nbformat.v4.new_code_cell("x = 1"), md))
    assert info["title"] == "02 SWA" and info["goals"] == []
    assert info["intro"] == "Stochastic weight averaging, measured."


def test_lesson_summary_needs_a_markdown_cell(tmp_path):
    with pytest.raises(ValueError, match="03_x.ipynb.*markdown"):
        ext.lesson_summary(_write_nb(tmp_path / "03_x.ipynb", nbformat.v4.new_code_cell("x = 1")))


def test_ledger_values_are_rounded_and_short():
    assert ext._value_text(None) == ""
    assert ext._value_text(0.5379999999999999) == "0.538"
    assert ext._value_text({"ratio": 3.3333333333333335, "runs": [0.1 + 0.2, 2], "ok": True}) == \
        '{"ratio": 3.333, "runs": [0.3, 2], "ok": true}'
    long = ext._value_text({f"k{i}": i for i in range(40)})
    assert len(long) == 80 and long.endswith("...")


def test_load_claims_reads_what_the_ledger_writes(tmp_path, monkeypatch):
    from transferlab.claims import Ledger, load_records

    monkeypatch.setenv("TRANSFERLAB_RESULTS", str(tmp_path))
    a = Ledger("01_a", smoke=True)
    a.record("c1", claim="one", measured="1.0", verdict="reproduced", value=1.0, display=False)
    a.record("c2", claim="two", measured="2", verdict="partly", value={"x": [1, 2]}, display=False)
    Ledger("02_b").record("c3", claim="three", measured="3", verdict="not at this scale", display=False)
    got = ext.load_claims(tmp_path)
    assert [r["id"] for r in got] == ["c1", "c2", "c3"]
    assert got == load_records(tmp_path)  # the package's own reader
    assert ext.load_claims(tmp_path / "missing") == []


@pytest.mark.parametrize("content, match", [("not json", "JSONDecodeError"), ('{"notebook": "x"}', "KeyError"),
                                            ('{"claims": [{"id": "c"}]}', "lacks")])
def test_load_claims_names_a_broken_file(tmp_path, content, match):
    (tmp_path / "05_bad.json").write_text(content)
    with pytest.raises(ValueError, match=f"05_bad.json.*{match}"):
        ext.load_claims(tmp_path)


def test_layout_source_injects_smoke_only_in_smoke_mode_and_keeps_unchanged_files(tmp_path):
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    fixture_notebook(nbs)
    stems = build.layout_source(tmp_path / "smoke", nbs, smoke=True)
    assert stems == [FIXTURE_STEM]
    nb = nbformat.read(tmp_path / "smoke" / "lessons" / f"{FIXTURE_STEM}.ipynb", as_version=4)
    i = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    assert nb.cells[i + 1].metadata["tags"] == ["injected-parameters"]
    assert "SMOKE = True" in nb.cells[i + 1].source
    build.layout_source(tmp_path / "default", nbs, smoke=False)
    assert nbformat.read(tmp_path / "default" / "lessons" / f"{FIXTURE_STEM}.ipynb", as_version=4) == \
        nbformat.read(nbs / f"{FIXTURE_STEM}.ipynb", as_version=4)
    assert (tmp_path / "default" / "index.md").read_text() == (ROOT / "docs" / "index.md").read_text()
    # an unchanged file is not rewritten (Sphinx re-reads only what changed); a lesson that left is removed
    copy = tmp_path / "smoke" / "lessons" / f"{FIXTURE_STEM}.ipynb"
    mtime = copy.stat().st_mtime_ns
    build.layout_source(tmp_path / "smoke", nbs, smoke=True)
    assert copy.stat().st_mtime_ns == mtime
    (nbs / f"{FIXTURE_STEM}.ipynb").rename(nbs / "97_other.ipynb")
    assert build.layout_source(tmp_path / "smoke", nbs, smoke=True) == ["97_other"]
    assert not copy.exists()


def test_layout_source_refuses_an_empty_folder(tmp_path):
    with pytest.raises(SystemExit, match="no lesson notebooks"):
        build.layout_source(tmp_path / "src", tmp_path, smoke=True)


def test_kernel_threads_share_the_cores_between_parallel_kernels():
    assert build.kernel_threads(2, environ={}, cpus=2) == 1
    assert build.kernel_threads(1, environ={}, cpus=2) == 2
    assert build.kernel_threads(2, environ={}, cpus=16) == 8
    assert build.kernel_threads(3, environ={}, cpus=2) == 1  # never zero
    assert build.kernel_threads(2, environ={"OMP_NUM_THREADS": "4"}, cpus=2) == 4  # the user's choice wins
    with pytest.raises(SystemExit, match="OMP_NUM_THREADS must be a whole number >= 1, got 'two'"):
        build.kernel_threads(2, environ={"OMP_NUM_THREADS": "two"}, cpus=2)


def test_fingerprint_follows_the_package_source(tmp_path, monkeypatch):
    (tmp_path / "transferlab").mkdir()
    (tmp_path / "transferlab" / "a.py").write_text("x = 1\n")
    monkeypatch.setattr(build, "ROOT", tmp_path)
    monkeypatch.setenv("TRANSFERLAB_HOME", str(tmp_path / "home"))
    first = build.fingerprint()
    assert build.fingerprint() == first
    (tmp_path / "transferlab" / "a.py").write_text("x = 2\n")
    assert build.fingerprint() != first


def test_external_references_finds_loads_not_links():
    html = """<script src="https://cdn.example/a.js"></script><script src="_static/b.js"></script>
    <link rel="stylesheet" href="//fonts.example/css"><link rel="next" href="claims.html">
    <img src='http://img.example/x.png'><img srcset="a.png 1x, https://img.example/b.png 2x">
    <style>@import "https://css.example/c.css"; .x { background: url(https://img.example/bg.png) }
    .y { background: url('data:image/png;base64,AAA') } .z { src: url(../fonts/f.woff2) }</style>
    <a href="https://github.com/">a link is fine</a>"""
    assert external_references(html) == ["https://cdn.example/a.js", "//fonts.example/css",
                                         "http://img.example/x.png", "https://img.example/b.png",
                                         "https://css.example/c.css", "https://img.example/bg.png"]


def test_conf_loads_nothing_from_the_network(monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_DOCS_SMOKE", "1")
    conf = runpy.run_path(str(ROOT / "docs" / "conf.py"))
    assert conf["html_title"].endswith("(smoke build)")
    assert conf["nb_execution_mode"] == "cache"
    for url in [*conf["nb_ipywidgets_js"], conf["mathjax_path"]]:
        assert not external_references(f'<script src="{url}"></script>'), url


# ------------------------------------------------------------------------------------------ fixture site (slow)


@pytest.fixture(scope="module")
def fixture():
    return fixture_site()


@pytest.mark.slow
@pytest.mark.xdist_group("docs-site")
def test_fixture_lesson_renders_every_output_type(fixture):
    page = fixture.page(f"lessons/{FIXTURE_STEM}.html")
    assert "_static/vendor/plotly/plotly.min.js" in page
    assert page.count("Plotly.newPlot(") == 1
    payload = _figure_payload(page)
    assert payload["data"][0]["y"] == [3, 1, 2] and payload["data"][0]["name"] == "</script><b>not html</b>"
    assert "_static/vendor/html-manager/embed.js" in page
    assert '<script type="application/vnd.jupyter.widget-state+json">' in page
    assert page.count('<script type="application/vnd.jupyter.widget-view+json">') == 1
    assert "_static/vendor/mathjax/tex-chtml.js" in page and "MathJax.Hub" in page  # the html-manager shim
    assert re.search(r'<img[^>]+src="\.\./_images/[0-9a-f]+\.png"', page), "the matplotlib figure is missing"
    assert "Traceback" not in page and "unknown output mime type" not in fixture.log
    for asset in ("plotly/plotly.min.js", "html-manager/embed.js", "mathjax/tex-chtml.js",
                  "mathjax/output/chtml/fonts/woff-v2/MathJax_Main-Regular.woff"):
        assert (fixture.html / "_static" / "vendor" / asset).is_file(), asset


@pytest.mark.slow
@pytest.mark.xdist_group("docs-site")
def test_fixture_claims_ledger_is_generated_from_the_run(fixture):
    records = json.loads((fixture.out / "results" / f"{FIXTURE_STEM}.json").read_text())["claims"]
    assert [r["measured"] for r in records] == ["SMOKE was True"]  # the smoke cell was injected and ran
    page = fixture.page("claims.html")
    for rec in records:
        assert rec["claim"] in page and rec["measured"] in page and f"verdict-{rec['verdict']}" in page
    assert f'id="ledger-{FIXTURE_STEM}"' in page
    assert f'href="lessons/{FIXTURE_STEM}.html"' in page
    assert "smoke build" in page and "1 claim measured by 1 lesson" in page


@pytest.mark.slow
@pytest.mark.xdist_group("docs-site")
def test_fixture_landing_page(fixture):
    import torch

    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", fixture.page("index.html")))
    assert "98 Fixture lesson" in text and "how a widget keeps its state" in text
    assert "$ make lab" in text and "$ make test" in text
    assert f"torch {torch.__version__}" in text  # env_report() of the machine that built the site
    assert "build mode smoke (tiny budgets" in text


@pytest.mark.slow
@pytest.mark.xdist_group("docs-site")
def test_fixture_site_references_no_external_url(fixture):
    _assert_offline(fixture.html)


@pytest.mark.slow
@pytest.mark.xdist_group("docs-site")
def test_rebuild_reuses_the_execution_cache(fixture, tmp_path):
    """A markdown-only change re-renders the page without executing the notebook again (myst-nb cache mode)."""
    work = Path(tempfile.mkdtemp(dir=tmp_path))
    shutil.copytree(fixture.out, work / "site", ignore=shutil.ignore_patterns("html"))
    # build.py drops the cache when transferlab/*.py changed since the cached run; pin it to now, so that an edit
    # to the package made while the tests run does not turn this test into a full re-execution
    (work / "site" / "fingerprint").write_text(build.fingerprint())
    nbs = work / "notebooks"
    nbs.mkdir()
    nb = nbformat.read(fixture_notebook(nbs), as_version=4)
    nb.cells.append(nbformat.v4.new_markdown_cell("A sentence added after the first build."))
    nbformat.write(nb, nbs / f"{FIXTURE_STEM}.ipynb")
    again = run_build(work / "site", nbs)
    assert "Using cached notebook" in again.log and "Executing notebook" not in again.log, again.log[-3000:]
    assert "A sentence added after the first build." in again.page(f"lessons/{FIXTURE_STEM}.html")


def _assert_offline(html_dir: Path):
    pages = sorted(html_dir.rglob("*.html"))
    assert pages
    bad = {str(p.relative_to(html_dir)): refs for p in pages if (refs := external_references(p.read_text()))}
    assert not bad, f"pages load external URLs: {bad}"
    css = sorted((html_dir / "_static").rglob("*.css"))
    bad = {str(p.relative_to(html_dir)): refs for p in css if (refs := external_references(p.read_text()))}
    assert not bad, f"stylesheets load external URLs: {bad}"


# ------------------------------------------------------------------------------------------ the real lessons (slow)
@pytest.fixture(scope="module")
def site():
    if not LESSONS:
        pytest.skip("no lesson notebooks yet in notebooks/")
    return smoke_site()


@pytest.mark.slow
@pytest.mark.xdist_group("docs-site")
def test_smoke_site_builds_every_lesson_and_its_ledger(site):
    summary = json.loads((site.out / "build.json").read_text())
    print(f"smoke site: {len(LESSONS)} lessons built in {summary['seconds']} s (jobs={summary['jobs']})")
    assert summary["ok"] and summary["lessons"] == [p.stem for p in LESSONS]
    ledger = site.page("claims.html")
    recorded = {r["notebook"] for r in ext.load_claims(site.out / "results")}
    for path in LESSONS:
        page = site.page(f"lessons/{path.stem}.html")
        assert "Traceback" not in page, f"{path.stem}: a traceback is on the page"
        assert path.stem in recorded, f"{path.stem} recorded no claims"
        assert f'href="lessons/{path.stem}.html"' in ledger
        assert f'href="lessons/{path.stem}.html"' in site.page("index.html")


@pytest.mark.slow
@pytest.mark.xdist_group("docs-site")
def test_smoke_site_references_no_external_url(site):
    _assert_offline(site.html)
