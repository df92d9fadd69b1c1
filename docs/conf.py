"""Sphinx configuration: MyST Markdown pages, autodoc for the API, sphinx-gallery for
examples/gallery/ (run during the build), the furo theme.

    python -m sphinx -W -b html docs OUT      # warnings are errors (.ci/docs.sh)
"""
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's dendrisim, not an installed one
os.environ.setdefault("MPLBACKEND", "Agg")

import dendrisim  # noqa: E402

project = "dendrisim"
author = "the dendrisim authors"
copyright = "the dendrisim authors"
release = version = dendrisim.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "sphinx_gallery.gen_gallery",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build", "auto_examples/*.ipynb", "auto_examples/*.py", "auto_examples/*.zip",
                    "auto_examples/*.json", "auto_examples/*.md5", "auto_examples/*.codeobj.json"]
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": True}
nitpicky = False

sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples" / "gallery"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",          # run every plot_*.py
    "download_all_examples": False,
    "remove_config_comments": True,
    "write_computation_times": True,
    "matplotlib_animations": False,
    "within_subsection_order": "FileNameSortKey",
    "run_stale_examples": True,             # rerun every build: the figures follow the code
}

html_theme = "furo"
html_title = f"dendrisim {release}"
html_static_path = []
