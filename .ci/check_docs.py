"""Open the built documentation in headless Chromium and check what a reader would see.

usage: python .ci/check_docs.py docs/_build/html [--screenshots DIR]

For each checked page: no error in the browser console (script errors, failed loads of
local files such as MathJax's fonts), MathJax 3 loaded from the site itself and every
formula typeset without a TeX error, and the expected content present (the API pages
hold their class or function entry with its equations). A screenshot of each page is
written (default: docs/_build/screenshots) so a person can look at it.

The browser is Debian's ``chromium``, driven over the DevTools protocol on a pipe
(``--remote-debugging-pipe``: no port, no network, standard library only).
"""
from __future__ import annotations

import argparse
import base64
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
         '--disable-component-update', '--disable-sync', '--no-first-run',
         '--disable-extensions', '--hide-scrollbars', '--window-size=1200,1400',
         '--remote-debugging-pipe']

# page -> (minimum number of formulas, texts that must be on the page)
PAGES = {
    'index.html': (1, ['graphattn', 'LatentGNN']),
    'lga.html': (3, ['Our reading of the paper']),
    'latentgnn.html': (1, ['In words, step by step']),
    'api/graphattn.html': (0, ['LGAConv', 'LatentGNN2d', 'patch_labels']),
    'api/generated/graphattn.LGAConv.html': (5, ['class LGAConv(', 'Shapes']),
    'api/generated/graphattn.LatentGNN.html': (5, ['class LatentGNN(']),
    'api/generated/graphattn.LGALoss.html': (1, ['class LGALoss(']),
    'api/graphs.html': (0, ['knn_graph', 'to_networkx']),
    'api/generated/graphs.knn_graph.html': (0, ['graphs.knn_graph']),
    'getting_started.html': (0, ['How torch is chosen', 'dataset-fashion-mnist']),
    'tutorials/feature_maps.html': (0, ['max |fast - message passing|']),
    'tutorials/point_clouds.html': (0, ['per-node sums of a_ij']),
    'tutorials/networkx.html': (0, ['strongest incoming edge']),
    'results.html': (0, ['Fashion-MNIST collages', 'Dehazing real photos']),
    'performance.html': (0, ['kNN graph construction', 'torch.compile']),
    'support.html': (0, ['torch.compile']),
}


def _pipe_fds(read_end: int, write_end: int) -> None:
    """In the child: put the pipe's ends on fds 3 and 4, where Chromium expects them."""
    high_read = fcntl.fcntl(read_end, fcntl.F_DUPFD, 10)   # out of the way of 3 and 4 first
    high_write = fcntl.fcntl(write_end, fcntl.F_DUPFD, 10)
    os.dup2(high_read, 3)
    os.dup2(high_write, 4)


class Browser:
    """A minimal DevTools-protocol client over Chromium's pipe (fd 3 in, fd 4 out)."""

    def __init__(self, binary: str, profile: str) -> None:
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        self._proc = subprocess.Popen(
            [binary, *FLAGS, f'--user-data-dir={profile}', 'about:blank'],
            pass_fds=(3, 4), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=lambda: _pipe_fds(to_chrome_r, from_chrome_w))
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b''
        self._next_id = 0
        self.events: list[dict] = []

    def _send(self, method: str, params: dict | None = None, session: str | None = None) -> int:
        self._next_id += 1
        message = {'id': self._next_id, 'method': method, 'params': params or {}}
        if session:
            message['sessionId'] = session
        os.write(self._to_chrome, json.dumps(message).encode() + b'\0')
        return self._next_id

    def _read(self, deadline: float) -> dict:
        while b'\0' not in self._buffer:
            if time.monotonic() > deadline:
                raise TimeoutError('no answer from chromium')
            chunk = os.read(self._from_chrome, 1 << 16)
            if not chunk:
                raise RuntimeError('chromium closed the pipe')
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b'\0', 1)
        return json.loads(message)

    def call(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float = 60) -> dict:
        wanted = self._send(method, params, session)
        deadline = time.monotonic() + timeout
        while True:
            message = self._read(deadline)
            if message.get('id') == wanted:
                if 'error' in message:
                    raise RuntimeError(f'{method}: {message["error"]}')
                return message.get('result', {})
            self.events.append(message)

    def wait_for(self, method: str, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        for i, event in enumerate(self.events):
            if event.get('method') == method:
                return self.events.pop(i)
        while True:
            message = self._read(deadline)
            if message.get('method') == method:
                return message
            self.events.append(message)

    def close(self) -> None:
        try:
            self._send('Browser.close')
            self._proc.wait(timeout=10)
        except Exception:
            self._proc.kill()
            self._proc.wait()


# Runs in the page once MathJax has finished: what was typeset, and with which errors.
INSPECT = r'''(async () => {
  const waitFor = async (test, ms) => { const end = Date.now() + ms;
    while (!test() && Date.now() < end) await new Promise(r => setTimeout(r, 50)); };
  const script = [...document.scripts].map(s => s.src).find(s => /mathjax/i.test(s)) || '';
  // Sphinx loads MathJax only on pages with math: wait for it there, and only there.
  if (script) await waitFor(() => window.MathJax && MathJax.startup && MathJax.startup.promise, 10000);
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) await MathJax.startup.promise;
  return JSON.stringify({
    mathjax: window.MathJax && MathJax.version || null,
    mathjaxSrc: script,
    formulas: document.querySelectorAll('mjx-container').length,
    texErrors: [...document.querySelectorAll('mjx-merror')].map(e => e.getAttribute('data-mjx-error') || e.textContent),
    rawMath: [...document.querySelectorAll('.math')].filter(e => !e.querySelector('mjx-container')).length,
    brokenImages: [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src),
    images: document.images.length,
    text: document.body.innerText,
  });
})()'''


def check_page(browser: Browser, root: Path, page: str, shots: Path,
               expect: tuple[int, list[str]], report: bool = True) -> list[str]:
    min_formulas, texts = expect
    target = browser.call('Target.createTarget', {'url': 'about:blank'})['targetId']
    session = browser.call('Target.attachToTarget', {'targetId': target, 'flatten': True})[
        'sessionId']
    for domain in ('Page', 'Runtime', 'Log'):
        browser.call(f'{domain}.enable', session=session)
    browser.events.clear()
    url = (root / page).resolve().as_uri()
    browser.call('Page.navigate', {'url': url}, session=session)
    browser.wait_for('Page.loadEventFired')
    found = json.loads(browser.call('Runtime.evaluate', {
        'expression': INSPECT, 'awaitPromise': True, 'returnByValue': True},
        session=session, timeout=60)['result']['value'])
    size = browser.call('Page.getLayoutMetrics', session=session)['cssContentSize']
    clip = {'x': 0, 'y': 0, 'width': size['width'], 'height': min(size['height'], 8000),
            'scale': 1}   # the whole page, up to 8000 CSS pixels
    shot = browser.call('Page.captureScreenshot', {
        'format': 'png', 'clip': clip, 'captureBeyondViewport': True}, session=session)
    name = page.replace('/', '_').replace('.html', '.png')
    (shots / name).write_bytes(base64.b64decode(shot['data']))

    problems = []
    for event in browser.events:
        method, params = event.get('method'), event.get('params', {})
        if method == 'Runtime.exceptionThrown':
            details = params['exceptionDetails']
            problems.append('script error: ' + details.get('exception', {}).get(
                'description', details.get('text', '')))
        elif method == 'Runtime.consoleAPICalled' and params.get('type') in ('error', 'assert'):
            problems.append('console.error: ' + ' '.join(
                str(a.get('value', a.get('description', ''))) for a in params.get('args', [])))
        elif method == 'Log.entryAdded' and params['entry'].get('level') == 'error':
            entry = params['entry']
            problems.append(f"console: {entry.get('text')} {entry.get('url', '')}".strip())
    if found['mathjax'] is None and min_formulas:
        problems.append('MathJax did not load')
    if found['mathjaxSrc'] and not found['mathjaxSrc'].startswith('file://'):
        problems.append(f"MathJax comes from {found['mathjaxSrc']}, not from the site")
    if found['formulas'] < min_formulas:
        problems.append(f"{found['formulas']} typeset formulas, expected >= {min_formulas}")
    problems += [f'TeX error: {e}' for e in found['texErrors']]
    if found['rawMath']:
        problems.append(f"{found['rawMath']} math elements were left untypeset")
    problems += [f'image not shown: {src}' for src in found['brokenImages']]
    problems += [f'missing text: {t!r}' for t in texts if t not in found['text']]
    if report:
        print(f"{'FAIL' if problems else 'ok  '} {page}: MathJax {found['mathjax']}, "
              f"{found['formulas']} formulas, {found['images']} images, screenshot {shots / name}")
    browser.call('Target.closeTarget', {'targetId': target})
    return [f'{page}: {p}' for p in problems]


BAD_PAGE = r"""<html><head><script>window.MathJax = {startup: {typeset: true}};</script>
<script src="%s"></script></head><body><p>self test</p>
<div class="math notranslate nohighlight">\[\frac{1}\]</div>
<script>console.error('deliberate error'); undefinedFunction();</script>
<img src="missing.png"></body></html>"""


def self_test(browser: Browser, site: Path, shots: Path) -> None:
    """The checker must catch what it looks for: run it on a page with a console error,
    a script error, a missing file, a TeX error and absent text, and expect each."""
    with tempfile.TemporaryDirectory() as folder:
        mathjax = (site / '_static' / 'mathjax' / 'tex-chtml.js').resolve().as_uri()
        (Path(folder) / 'bad.html').write_text(BAD_PAGE % mathjax)
        found = check_page(browser, Path(folder), 'bad.html', shots, (2, ['absent text']),
                           report=False)
    expected = ['console.error: deliberate error', 'undefinedFunction', 'image not shown',
                'TeX error', 'typeset formulas', "missing text: 'absent text'"]
    missed = [e for e in expected if not any(e in problem for problem in found)]
    if missed:
        raise SystemExit(f'check_docs self test: the checker missed {missed} in {found}')
    print(f'self test: the checker caught all {len(expected)} planted problems')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('site', type=Path)
    parser.add_argument('--screenshots', type=Path, default=None)
    parser.add_argument('--pages', nargs='*', default=list(PAGES))
    args = parser.parse_args()
    binary = shutil.which('chromium') or shutil.which('chromium-browser')
    if binary is None:
        print('error: chromium not found (Debian: apt-get install chromium)', file=sys.stderr)
        return 1
    shots = args.screenshots or args.site.parent / 'screenshots'
    shots.mkdir(parents=True, exist_ok=True)
    problems = []
    with tempfile.TemporaryDirectory() as profile:   # an empty profile each run
        browser = Browser(binary, profile)
        try:
            self_test(browser, args.site, shots)
            for page in args.pages:
                problems += check_page(browser, args.site, page, shots, PAGES.get(page, (0, [])))
        finally:
            browser.close()
    for problem in problems:
        print('  ' + problem, file=sys.stderr)
    print(f'docs check: {len(args.pages) - len({p.split(":")[0] for p in problems})} '
          f'of {len(args.pages)} pages passed')
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())
