#!/usr/bin/env bash
# Build graphattn's sdist and wheel (the wheel from the sdist, so a file missing from the
# sdist fails here), install the wheel into a clean venv that gets torch==2.13.0 first
# (never a bare torch), and smoke-test it from outside the source tree.
#   usage: bash .ci/package_smoke.sh PYTHON   (PYTHON: any python with pip, e.g. .venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."
py=${1:-.venv/bin/python}
clean=${VENV_WHEEL:-.venv-wheel}

"$py" -m pip install -q build
rm -rf dist
log=$(mktemp)
"$py" -m build --outdir dist . >"$log" 2>&1 || { cat "$log"; exit 1; }
# Modern metadata: no deprecation warning from setuptools (licence classifiers, setup.cfg, ...).
if grep -i -E "deprecat|license classifiers" "$log"; then
  echo "error: the package build printed the deprecation warnings above" >&2
  exit 1
fi
ls dist

rm -rf "$clean"
"$py" -m venv "$clean"
"$clean/bin/python" -m pip install -q torch==2.13.0
"$clean/bin/python" -m pip install -q dist/graphattn-*.whl
# From an empty folder: the import must come from the installed wheel, not the checkout.
work=$(mktemp -d)
cp .ci/smoke_import.py "$work/"
( cd "$work" && OMP_NUM_THREADS=1 "$OLDPWD/$clean/bin/python" smoke_import.py )
rm -rf "$work"
