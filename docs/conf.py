"""Sphinx configuration: MyST Markdown pages, autodoc for the API, sphinx-gallery for
examples/gallery/ (run during the build), the furo theme, MathJax shipped with the site.

    python -m sphinx -W -n -b html docs OUT   # warnings are errors, every reference checked (.ci/docs.sh)
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

# No napoleon: the docstrings are reStructuredText, with no Google or NumPy sections, and
# napoleon read the first line of every attribute or property docstring that holds a colon
# ("whether ... (pc: its parameters ...)") as "type: description", which garbled them.
# MathJax comes from the sphinx-mathjax-offline package (the 'docs' extra), which copies its
# files into _static/mathjax: the pages' maths render offline, and no page loads a CDN.
extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",
    "sphinx.ext.viewcode",
    "sphinx_gallery.gen_gallery",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build", "auto_examples/*.ipynb", "auto_examples/*.py", "auto_examples/*.zip",
                    "auto_examples/*.json", "auto_examples/*.md5", "auto_examples/*.codeobj.json",
                    "sg_execution_times.rst", "auto_examples/sg_execution_times.rst"]  # see write_computation_times
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": True}
# .ci/docs.sh builds with -n (nitpicky): every cross-reference must resolve. The ones below
# name types of other projects; they cannot resolve without intersphinx, which would fetch
# those projects' inventories over the network at every build, and the site builds offline.
nitpicky = True
nitpick_ignore = [
    ("py:class", "torch.Tensor"),                    # PyTorch
    ("py:class", "torch.nn.modules.module.Module"),  # torch.nn.Module, as autodoc names it
    ("py:class", "numpy.ndarray"),                   # NumPy
    ("py:class", "nx.DiGraph"),                      # networkx, as the type hints import it
    ("py:class", "pathlib.Path"),                    # the standard library's, also without intersphinx
    ("py:class", "Path"),
]

sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples" / "gallery"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",          # run every plot_*.py
    "download_all_examples": False,
    "remove_config_comments": True,
    # no sg_execution_times pages: sphinx-gallery builds their table with jQuery and DataTables
    # loaded from CDNs, and the site works offline (.ci/docs.sh refuses pages that load any)
    "write_computation_times": False,
    "matplotlib_animations": False,
    "within_subsection_order": "FileNameSortKey",
    "run_stale_examples": True,             # rerun every build: the figures follow the code
}

html_theme = "furo"
html_title = f"dendrisim {release}"
html_static_path = []


def _short_type_names(app, env, node, contnode):
    """Resolve a type that a signature names by its short name: the package's modules use
    ``from __future__ import annotations`` and import some types only for type checking, so
    autodoc sees ``Projection`` or ``'PopulationConfig'`` as written. Such a name resolves when
    exactly one documented dendrisim class ends with it; anything else stays a broken
    reference (an error under -n)."""
    if node.get("refdomain") != "py" or node.get("reftype") != "class":
        return None
    target = node["reftarget"].strip("'\"")
    if not target.isidentifier():
        return None
    domain = env.get_domain("py")
    matches = [(name, obj) for name, obj in domain.find_obj(env, None, None, target, "class", 1)
               if name.startswith("dendrisim.")]
    if len(matches) != 1:
        return None
    from sphinx.util.nodes import make_refnode

    name, obj = matches[0]
    return make_refnode(app.builder, node["refdoc"], obj.docname, obj.node_id, contnode, name)


def setup(app):
    app.connect("missing-reference", _short_type_names)
