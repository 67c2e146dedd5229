"""Sphinx configuration of graphattn's documentation site (``./tasks.sh docs``).

Everything the pages need is local: MathJax 3 comes from the ``sphinx-mathjax-offline``
wheel (copied into ``_static/mathjax``), and the tutorials' code runs during the build
(``docs/_ext/runcode.py``), one-threaded, so a snippet that stops working fails the build.
"""
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Document the checkout being built, not whatever graphattn the environment has installed.
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent / '_ext'))
os.environ.setdefault('OMP_NUM_THREADS', '1')
os.environ.setdefault('MKL_NUM_THREADS', '1')
os.environ.setdefault('MPLBACKEND', 'Agg')

import graphattn  # noqa: E402

project = 'graphattn'
author = 'The graphattn contributors'
copyright = '2026, The graphattn contributors'
release = version = graphattn.__version__

extensions = [
    'sphinx.ext.autodoc',
    'sphinx.ext.autosummary',
    'sphinx.ext.napoleon',
    'sphinx.ext.mathjax',
    'sphinx-mathjax-offline',  # sets mathjax_path to the bundled copy; no CDN
    'myst_parser',
    'runcode',
]

source_suffix = {'.rst': 'restructuredtext', '.md': 'markdown'}
root_doc = 'index'
exclude_patterns = ['_build', 'runs', 'Thumbs.db', '.DS_Store']  # runs/: raw outputs
templates_path = ['_templates']

myst_enable_extensions = ['dollarmath', 'colon_fence']
myst_heading_anchors = 3

# API reference: one page per public name, generated from the docstrings.
autosummary_generate = True
autosummary_imported_members = True
autodoc_member_order = 'bysource'
autodoc_typehints = 'none'         # the Args: sections state the types, PyG style
autodoc_default_options = {'show-inheritance': False}
add_module_names = False

# The docstrings follow PyG's style: Args:, Returns: and a Shapes: section.
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_custom_sections = ['Shapes']

html_theme = 'alabaster'
html_title = f'graphattn {release}'
html_theme_options = {
    'description': 'LGA and LatentGNN as PyTorch Geometric layers',
    'fixed_sidebar': True,
    'page_width': '1180px',
    'sidebar_width': '220px',
}
html_static_path = ['_static']
html_css_files = ['graphattn.css']
html_show_sourcelink = False
