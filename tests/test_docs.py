"""The documentation site and the package metadata stay in step with the code.

The checks on files run everywhere; the ones that build a small Sphinx project run where
Sphinx is installed (``pip install -e ".[docs]"``; ``./tasks.sh docs`` runs this file).
"""
import ast
import re
from pathlib import Path

import pytest

import graphattn
import graphs

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / 'docs'


def _autosummary_names(page: Path) -> set:
    names, inside = set(), False
    for line in page.read_text().splitlines():
        if line.startswith('.. autosummary::'):
            inside = True
        elif inside and re.fullmatch(r'   [A-Za-z_][A-Za-z_0-9]*', line):
            names.add(line.strip())
        elif inside and line and not line.startswith(' '):
            inside = False
    return names


@pytest.mark.parametrize('package', [graphattn, graphs], ids=lambda p: p.__name__)
def test_api_reference_lists_exactly_the_public_names(package):
    listed = _autosummary_names(DOCS / 'api' / f'{package.__name__}.rst')
    public = set(package.__all__)
    assert public - listed == set(), 'public names without an API page'
    assert listed - public == set(), 'API pages for names that are not public'


def _pyproject() -> dict:
    tomllib = pytest.importorskip('tomllib')   # Python >= 3.11
    return tomllib.loads((ROOT / 'pyproject.toml').read_text())


def _project() -> dict:
    return _pyproject()['project']


def test_license_metadata_is_an_spdx_expression_with_the_file():
    project = _project()
    assert project['license'] == 'MIT'
    assert project['license-files'] == ['LICENSE']
    assert not [c for c in project.get('classifiers', []) if c.startswith('License ::')]
    text = (ROOT / 'LICENSE').read_text()
    assert text.startswith('MIT License') and 'WITHOUT WARRANTY OF ANY KIND' in text
    assert not (ROOT / 'setup.cfg').exists(), 'metadata belongs in pyproject.toml only'


def test_torch_is_a_floor_and_tasks_install_the_pinned_torch_first():
    requirements = _project()['dependencies']
    torch_req = [r for r in requirements if re.match(r'torch\b(?!-)', r)]
    assert torch_req == ['torch>=2.6'], 'torch must stay a floor only (never pinned, never bare)'
    # One floor, said alike wherever it is said (four places had to move from 2.4 to 2.6).
    for path in ('README.md', 'docs/getting_started.md', '.ci/smoke_import.py'):
        said = set(re.findall(r'torch>=[\d.]+', (ROOT / path).read_text()))
        assert said == set(torch_req), (path, said)
    tasks = (ROOT / 'tasks.sh').read_text()
    pinned = tasks.index('pip install -q torch==2.13.0')
    assert pinned < tasks.index('pip install -q -e'), 'torch must be installed before the package'
    smoke = (ROOT / '.ci' / 'package_smoke.sh').read_text()
    assert smoke.index('torch==2.13.0') < smoke.index('dist/graphattn-*.whl')


def test_version_has_one_source():
    project = _project()
    assert 'version' not in project and 'version' in project['dynamic']
    setuptools_cfg = _pyproject()['tool']['setuptools']
    assert setuptools_cfg['dynamic']['version'] == {'attr': 'graphattn.__version__'}
    # setuptools reads it statically: it must stay a literal assignment.
    tree = ast.parse((ROOT / 'graphattn' / '__init__.py').read_text())
    literal = [node.value.value for node in tree.body if isinstance(node, ast.Assign)
               and [t.id for t in node.targets if isinstance(t, ast.Name)] == ['__version__']
               and isinstance(node.value, ast.Constant)]
    assert literal == [graphattn.__version__]


def test_readme_links_to_pages_that_exist():
    text = (ROOT / 'README.md').read_text()
    links = re.findall(r'\]\((docs/[^)#]+)', text)
    assert links, 'the README should point to the documentation pages'
    for link in links:
        source = ROOT / link
        if source.suffix == '.html':   # a built page: its source is .md or .rst
            source = ROOT / link.replace('docs/_build/html/', 'docs/')
            assert source.with_suffix('.md').exists() or source.with_suffix('.rst').exists(), link
        else:
            assert source.exists(), link
    for command in ('./tasks.sh demo', './tasks.sh test'):
        assert command in text


def _build(tmp_path: Path, body: str):
    """Build a one-page Sphinx project that uses the runcode extension."""
    sphinx_app = pytest.importorskip('sphinx.application')
    src = tmp_path / 'src'
    src.mkdir()
    (src / 'conf.py').write_text(
        'import sys\n'
        f'sys.path.insert(0, {str(DOCS / "_ext")!r})\n'
        "extensions = ['runcode']\n")
    (src / 'index.rst').write_text(body)
    app = sphinx_app.Sphinx(str(src), str(src), str(tmp_path / 'html'),
                            str(tmp_path / 'doctrees'), 'html', status=None,
                            warningiserror=True, freshenv=True)
    app.build()
    return (tmp_path / 'html' / 'index.html').read_text()


def test_runcode_shows_the_code_and_what_it_printed(tmp_path):
    html = _build(tmp_path, 'Page\n====\n\n.. runcode::\n\n   x = 6 * 7\n\n'
                            '.. runcode::\n\n   print("answer", x)\n')
    assert 'answer 42' in html   # the second block saw the first block's name
    assert 'runcode-output' in html


def test_runcode_fails_the_build_when_a_snippet_breaks(tmp_path):
    errors = pytest.importorskip('sphinx.errors')
    with pytest.raises(errors.SphinxError, match=r'index:\d+ raised ZeroDivisionError'):
        _build(tmp_path, 'Page\n====\n\n.. runcode::\n\n   1 / 0\n')


def test_readme_code_runs(one_thread):
    readme = ROOT / 'README.md'
    blocks = re.findall(r'```python\n(.*?)```', readme.read_text(), flags=re.S)
    assert blocks
    namespace = {}
    for block in blocks:
        exec(compile(block, str(readme), 'exec'), namespace)
    assert tuple(namespace['out'].shape) == (2, 64, 32, 32)
