"""``runcode``: a directive that runs its Python code while the documentation builds.

The code is shown, executed, and followed by what it printed, so a tutorial that stops
working fails the build instead of rotting. All blocks of one page share one namespace
(later blocks see earlier names), torch runs on one thread, and an exception stops the
build with the page, the block and the traceback. ``:figure:`` saves the current
matplotlib figure after the block and shows it below the output.

In reStructuredText::

    .. runcode::

       print(1 + 1)

In MyST Markdown, the same as a ```` ```{runcode} ```` fence.
"""
from __future__ import annotations

import contextlib
import io
import traceback
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import Directive, directives
from sphinx.errors import ExtensionError

GENERATED = '_generated'   # figures written by snippets, under the source folder (git-ignored)


def _one_thread() -> None:
    import torch
    torch.set_num_threads(1)


class RunCode(Directive):
    has_content = True
    option_spec = {'figure': directives.unchanged, 'hide-output': directives.flag}

    def run(self) -> list[nodes.Node]:
        env = self.state.document.settings.env
        # temp_data lives while one page is read: the page's blocks share this namespace.
        namespace = env.temp_data.setdefault('runcode_namespace', {'__name__': '__runcode__'})
        code = '\n'.join(self.content)
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                exec(compile(code, f'<{env.docname} line {self.lineno}>', 'exec'), namespace)
        except Exception as err:
            raise ExtensionError(
                f'runcode: the block at {env.docname}:{self.lineno} raised '
                f'{type(err).__name__}: {err}\n{traceback.format_exc()}') from err
        result: list[nodes.Node] = [nodes.literal_block(code, code, language='python')]
        printed = out.getvalue().rstrip('\n')
        if printed and 'hide-output' not in self.options:
            block = nodes.literal_block(printed, printed, language='text')
            block['classes'].append('runcode-output')
            result.append(block)
        if 'figure' in self.options:
            result.append(self._figure(env, self.options['figure']))
        return result

    def _figure(self, env, name: str) -> nodes.Node:
        import matplotlib.pyplot as plt
        if not plt.get_fignums():
            raise ExtensionError(f'runcode: {env.docname}:{self.lineno} asks for a figure '
                                 'but drew none')
        folder = Path(env.srcdir) / GENERATED
        folder.mkdir(exist_ok=True)
        plt.savefig(folder / name, dpi=100, bbox_inches='tight')
        plt.close('all')
        env.note_dependency(str(folder / name))
        return nodes.image(uri=f'/{GENERATED}/{name}', alt=name)


def setup(app):
    _one_thread()
    app.add_directive('runcode', RunCode)
    return {'version': '1.0', 'parallel_read_safe': False, 'parallel_write_safe': True}
