"""Build the transferlab site: every lesson executed, rendered with Sphinx + myst-nb, working with no network.

    python docs/build.py            # lesson mode (the notebooks' defaults) -> docs/_build/html
    python docs/build.py --smoke    # SMOKE = True injected into every notebook -> docs/_build/smoke/html

Steps: (1) the browser assets that the pages load are put in ``docs/_static/vendor`` -- plotly.js from the plotly
wheel, the ipywidgets renderer ``@jupyter-widgets/html-manager`` (its non-AMD ``embed.js``) and MathJax 3 from npm
(``npm ci`` into ``docs/node_modules`` on first use); (2) the source tree is laid out in ``<out>/src``: the
landing and ledger pages and a copy of each ``notebooks/NN_*.ipynb`` (in smoke mode with a papermill-style
``SMOKE = True`` cell after the ``parameters`` cell, as the test harness does); (3) ``sphinx-build -W --keep-going``
executes the notebooks through myst-nb's cache (``<out>/jupyter_cache``: a rebuild re-runs only notebooks whose
code changed; the cache is dropped when the transferlab package or the zoo changes), with ``TRANSFERLAB_RESULTS``
pointing at ``<out>/results`` so that the claims ledger is built from what this build measured.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
VENDOR = DOCS / "_static" / "vendor"
NODE_MODULES = DOCS / "node_modules"
HTML_MANAGER = NODE_MODULES / "@jupyter-widgets" / "html-manager" / "dist"
MATHJAX = NODE_MODULES / "mathjax" / "es5"
PAGES = ("index.md", "claims.md")

sys.path.insert(0, str(ROOT / "tests"))
from nbrun import inject  # noqa: E402  (the harness's papermill-style injection: one definition of "smoke")

from transferlab._paths import atomic_write, file_lock  # noqa: E402  (the kit's one atomic write and lock)

locked = file_lock  # concurrent builds take turns (the kit's lock: never truncates, never follows a link)


def write_if_changed(path: Path, data: bytes) -> bool:
    """Write atomically, and only when the content differs (Sphinx then re-reads only what changed)."""
    if path.exists() and path.read_bytes() == data:
        return False
    atomic_write(path, data)
    return True


# ------------------------------------------------------------------------------------------ (1) browser assets
def npm_install() -> None:
    """Install docs/package.json's packages into docs/node_modules (``npm ci`` when the lock file is there)."""
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("docs/build.py needs npm (Node.js) to fetch the widget renderer and MathJax: "
                         "install Node.js (e.g. apt-get install nodejs npm) and run again")
    cmd = [npm, "ci" if (DOCS / "package-lock.json").exists() else "install", "--no-audit", "--no-fund",
           "--loglevel=error"]
    print("docs: " + " ".join(cmd[1:]) + " (widget renderer and MathJax)", flush=True)
    subprocess.run(cmd, cwd=DOCS, check=True)


def vendor_assets() -> dict[str, str]:
    """Copy plotly.js, html-manager's embed.js (+ its fonts) and MathJax into docs/_static/vendor.

    Returns the versions that were vendored. Skips the copy when ``VERSIONS.json`` already matches.
    """
    import plotly

    lock = json.loads((DOCS / "package-lock.json").read_text()) if (DOCS / "package-lock.json").exists() else {}
    want = {p: (lock.get("packages", {}).get(f"node_modules/{p}", {}).get("version", "?"))
            for p in ("@jupyter-widgets/html-manager", "mathjax")}
    if not (HTML_MANAGER / "embed.js").exists() or not (MATHJAX / "tex-chtml.js").exists() or any(
            _installed_version(p) != v for p, v in want.items() if v != "?"):
        npm_install()
    versions = {"plotly": plotly.__version__, **{p: _installed_version(p) for p in want}}
    stamp = VENDOR / "VERSIONS.json"
    if stamp.exists() and json.loads(stamp.read_text()) == versions:
        return versions
    tmp = VENDOR.with_name("vendor.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "plotly").mkdir(parents=True)
    shutil.copy2(Path(plotly.__file__).parent / "package_data" / "plotly.min.js", tmp / "plotly" / "plotly.min.js")
    # embed.js finds its font files next to itself (webpack's automatic publicPath)
    shutil.copytree(HTML_MANAGER, tmp / "html-manager",
                    ignore=shutil.ignore_patterns("*.map", "*amd.js"))
    # MathJax: the tex-chtml component and what it loads on demand (extensions, fonts, menu, accessibility)
    top_level_js = [p.name for p in MATHJAX.glob("*.js") if p.name != "tex-chtml.js"]
    shutil.copytree(MATHJAX, tmp / "mathjax", ignore=lambda d, names: (
        top_level_js if Path(d) == MATHJAX else [n for n in names if n == "svg" or n == "svg.js"]))
    (tmp / "VERSIONS.json").write_text(json.dumps(versions, indent=2))
    shutil.rmtree(VENDOR, ignore_errors=True)
    os.replace(tmp, VENDOR)
    return versions


def _installed_version(package: str) -> str:
    pj = NODE_MODULES / package / "package.json"
    return json.loads(pj.read_text())["version"] if pj.exists() else "missing"


# ------------------------------------------------------------------------------------------ (2) source tree
def lesson_paths(notebooks: Path) -> list[Path]:
    paths = sorted(notebooks.glob("[0-9][0-9]_*.ipynb"))
    if not paths:
        raise SystemExit(f"docs/build.py: no lesson notebooks (NN_*.ipynb) in {notebooks}")
    return paths


def layout_source(src: Path, notebooks: Path, smoke: bool) -> list[str]:
    """Write the pages and (injected) notebooks into ``src``; returns the lesson stems."""
    import nbformat

    for page in PAGES:
        write_if_changed(src / page, (DOCS / page).read_bytes())
    lessons = src / "lessons"
    stems = []
    for path in lesson_paths(notebooks):
        nb = nbformat.read(path, as_version=4)
        if smoke:
            nb = inject(nb, {"SMOKE": True})
            for cell in nb.cells:  # a fixed id (nbformat draws a random one), so an unchanged lesson stays unchanged
                if "injected-parameters" in cell.metadata.get("tags", []):
                    cell.id = "injected-parameters"
        write_if_changed(lessons / path.name, nbformat.writes(nb).encode())
        stems.append(path.stem)
    for stale in lessons.glob("*.ipynb"):
        if stale.stem not in stems:
            stale.unlink()
    return stems


def fingerprint() -> str:
    """What the executed outputs depend on besides the notebooks' code: the package source and the zoo."""
    h = hashlib.sha256()
    package = ROOT / "transferlab"
    for path in sorted(package.rglob("*.py")):  # rglob: the sub-packages (transferlab/widgets/) count too
        h.update(path.relative_to(package).as_posix().encode() + path.read_bytes())
    from transferlab import zoo

    with warnings.catch_warnings():  # a broken index is the zoo's to report, not the docs build's
        warnings.simplefilter("ignore")
        h.update(json.dumps(zoo.manifest(), sort_keys=True).encode())  # every model's record: a rebuild re-executes
    return h.hexdigest()


def execution_seconds(out: Path) -> dict[str, float]:
    """Seconds each lesson took when it was last executed, from the execution cache (a reused one keeps its time)."""
    from jupyter_cache import get_cache

    if not (out / "jupyter_cache").exists():
        return {}
    records = sorted(get_cache(str(out / "jupyter_cache")).list_cache_records(), key=lambda r: r.created)
    return {Path(r.uri).stem: round(r.data.get("execution_seconds", float("nan")), 1) for r in records}


# ------------------------------------------------------------------------------------------ (3) sphinx
def kernel_threads(jobs: int, environ: dict | None = None, cpus: int | None = None) -> int:
    """Torch threads for each of the ``jobs`` kernels that ``sphinx -j`` runs side by side.

    Each kernel would otherwise start one thread per core, and the oversubscribed cores spin: two lessons side by
    side on 2 cores ran several times slower than one after the other. ``OMP_NUM_THREADS``, when set, wins.

    >>> kernel_threads(2, environ={}, cpus=2), kernel_threads(2, environ={}, cpus=16), kernel_threads(4, {}, 2)
    (1, 8, 1)
    >>> kernel_threads(2, environ={"OMP_NUM_THREADS": "3"}, cpus=2)
    3
    """
    environ = os.environ if environ is None else environ
    if environ.get("OMP_NUM_THREADS"):
        value = environ["OMP_NUM_THREADS"]
        if not value.isdigit() or int(value) < 1:
            raise SystemExit(f"docs: OMP_NUM_THREADS must be a whole number >= 1, got {value!r}")
        return int(value)
    return max(1, (cpus or os.cpu_count() or 1) // jobs)


def build(out: Path, *, smoke: bool, notebooks: Path, jobs: int, clean: bool, strict: bool = True) -> dict:
    """Build the site into ``out/html``; returns a summary (also written to ``out/build.json``)."""
    t0 = time.perf_counter()
    out = out.resolve()
    if clean:
        shutil.rmtree(out / "html", ignore_errors=True)
        for name in ("src", "doctrees", "jupyter_cache", "results", "fingerprint"):
            p = out / name
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
    with locked(DOCS / "_build" / ".vendor.lock"):
        versions = vendor_assets()
    fp, fp_file = fingerprint(), out / "fingerprint"
    if fp_file.exists() and fp_file.read_text() != fp:
        print("docs: transferlab or the zoo changed since the last build: executing every notebook again")
        for name in ("jupyter_cache", "doctrees", "results"):
            shutil.rmtree(out / name, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    fp_file.write_text(fp)  # the state that the executions cached from now on belong to
    stems = layout_source(out / "src", notebooks, smoke)
    (out / "results").mkdir(parents=True, exist_ok=True)
    for stale in (out / "results").glob("[0-9][0-9]_*.json"):  # results of a lesson that was removed or renamed
        if stale.stem not in stems:
            stale.unlink()
    env = dict(os.environ, TRANSFERLAB_RESULTS=str(out / "results"), TRANSFERLAB_DOCS_SMOKE="1" if smoke else "0",
               TRANSFERLAB_DOCS_CACHE=str(out / "jupyter_cache"), PYTHONPATH=os.pathsep.join(
                   [str(ROOT)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])))
    env.pop("MPLBACKEND", None)  # let the kernels use the inline backend, so figures reach the page
    threads = kernel_threads(jobs)
    env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-c", str(DOCS), "-d", str(out / "doctrees"),
           "-j", str(jobs), "--keep-going"] + (["-W"] if strict else []) + [str(out / "src"), str(out / "html")]
    print(f"docs: {jobs} kernel(s) at a time, {threads} torch thread(s) each", flush=True)
    print("docs: " + " ".join(cmd[2:]), flush=True)
    proc = subprocess.run(cmd, env=env)
    seconds = time.perf_counter() - t0
    executed = execution_seconds(out)
    summary = dict(mode="smoke" if smoke else "default", lessons=stems, seconds=round(seconds, 1), jobs=jobs,
                   threads_per_kernel=threads,
                   execution_seconds={s: executed.get(s) for s in stems},
                   ok=proc.returncode == 0, html=str(out / "html"), vendored=versions,
                   built=time.strftime("%Y-%m-%dT%H:%M:%S"))
    write_if_changed(out / "build.json", json.dumps(summary, indent=2).encode())
    if proc.returncode != 0:
        raise SystemExit(f"docs: sphinx-build failed (exit {proc.returncode}) after {seconds:.0f} s; "
                         f"see the warnings above")
    for stem in stems:
        print(f"docs:   {stem}: executed in {summary['execution_seconds'][stem]} s (when it last ran)")
    print(f"docs: built {len(stems)} lessons ({summary['mode']} mode) in {seconds:.0f} s -> {out / 'html'}/index.html")
    return summary


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="inject SMOKE = True into every notebook (tiny budgets)")
    ap.add_argument("--out", type=Path, default=None,
                    help="build folder (default docs/_build, or docs/_build/smoke with --smoke); HTML in <out>/html")
    ap.add_argument("--notebooks", type=Path, default=ROOT / "notebooks", help="where the NN_*.ipynb lessons are")
    ap.add_argument("--jobs", type=int, default=int(os.environ.get("TRANSFERLAB_DOCS_JOBS", "2")),
                    help="notebooks executed in parallel (sphinx-build -j; default 2)")
    ap.add_argument("--clean", action="store_true", help="forget the execution cache and earlier output")
    ap.add_argument("--no-strict", dest="strict", action="store_false", help="do not turn warnings into errors")
    args = ap.parse_args(argv)
    if args.jobs < 1:
        ap.error(f"--jobs must be >= 1, got {args.jobs}")
    out = args.out or (DOCS / "_build" / "smoke" if args.smoke else DOCS / "_build")
    with locked(out.resolve() / ".build.lock"):
        return build(out, smoke=args.smoke, notebooks=args.notebooks.resolve(), jobs=args.jobs, clean=args.clean,
                     strict=args.strict)


if __name__ == "__main__":
    main()
