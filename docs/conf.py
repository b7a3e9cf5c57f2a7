"""Sphinx configuration of the transferlab site. Build it with ``make docs`` (or ``python docs/build.py``).

``docs/build.py`` lays out the source tree (the landing page, the ledger page and the lesson notebooks, injected
with ``SMOKE = True`` for a smoke build) in the build folder and runs ``sphinx-build -c docs`` on it; it tells this
file where things are through the ``TRANSFERLAB_DOCS_*`` environment variables below. Everything a page loads
(plotly.js, the ipywidgets renderer, MathJax) is served from ``_static/vendor``, which build.py fills: the site
works with no network.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))  # transferlab_docs.py and its entry point (plotly MIME renderer)
sys.path.insert(0, str(DOCS.parent))  # the transferlab package, for env_report()

SMOKE = os.environ.get("TRANSFERLAB_DOCS_SMOKE", "0") == "1"

project = "transferlab"
author = "the transferlab authors"
copyright = "the transferlab authors, MIT licence"
html_title = "transferlab" + (" (smoke build)" if SMOKE else "")

extensions = ["myst_nb", "transferlab_docs"]
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
exclude_patterns = ["_build", "**.ipynb_checkpoints", "node_modules"]
suppress_warnings: list[str] = []

# --- notebooks: executed at build time, cached so that a rebuild only re-runs the notebooks that changed
nb_execution_mode = os.environ.get("TRANSFERLAB_DOCS_EXECUTION", "cache")
nb_execution_cache_path = os.environ.get("TRANSFERLAB_DOCS_CACHE", str(DOCS / "_build" / ".jupyter_cache"))
nb_execution_timeout = int(os.environ.get("TRANSFERLAB_DOCS_CELL_TIMEOUT", "1800"))  # per cell, seconds
nb_execution_raise_on_error = True  # a lesson that fails is a failed build, never a page with a traceback
nb_execution_show_tb = True
nb_execution_in_temp = False  # run in the lesson's folder, as in JupyterLab
nb_merge_streams = True
# The widget renderer's non-AMD bundle, served locally; it renders the widget state saved at execution.
nb_ipywidgets_js = {"vendor/html-manager/embed.js": {}}

# --- claims ledger: the JSON files that transferlab.claims.Ledger writes while the notebooks execute
transferlab_results_dir = os.environ.get("TRANSFERLAB_RESULTS", "")
transferlab_smoke = SMOKE

# --- HTML, offline
html_theme = "sphinx_book_theme"
html_theme_options = {
    "show_toc_level": 2,
    "use_download_button": True,
    "use_fullscreen_button": True,
    "home_page_in_toc": True,
}
html_static_path = ["_static"]
html_last_updated_fmt = "%Y-%m-%d %H:%M"
mathjax_path = "vendor/mathjax/tex-chtml.js"  # MathJax 3 (npm package), relative to _static
html_show_sourcelink = False
mathjax_config_path = "_ext/mathjax_compat.js"  # lets the widget renderer's MathJax 2 call work with MathJax 3
html_context = {"default_mode": "auto"}  # light/dark follows the reader's system (and no console error)
