#!/usr/bin/env bash
# graphattn's task runner: each task sets up what it needs on a fresh machine.
#   ./tasks.sh demo [args]   run the main job (see README)
#   ./tasks.sh test [args]   run the test suite
#   ./tasks.sh bench [args]  run the benchmarks
#   ./tasks.sh docs [--check]  build the documentation site (docs/_build/html); --check
#                            then opens its pages in headless Chromium (apt-get, as root)
#   ./tasks.sh package       build the sdist and wheel, install the wheel into a clean
#                            venv and smoke-test it from outside the source tree
#   ./tasks.sh test-sparse   the test suite again, with torch-scatter and torch-sparse
#                            built from source (slow the first time; see README)
#   ./tasks.sh gpu [args]    the device check (benchmarks/gpu_check.py): CUDA tests and
#                            benchmark rows on a GPU machine's own python3, no setup;
#                            --dry-run rehearses it on the CPU (docs/performance.md)
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
VENV=${VENV:-.venv}

setup() {
  if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
  fi
  local py="$VENV/bin/python"
  # torch first, pinned: an unpinned torch requirement would pull a multi-GB CUDA build.
  if ! "$py" -c 'import torch' >/dev/null 2>&1; then
    "$py" -m pip install -q --upgrade pip
    "$py" -m pip install -q torch==2.13.0
  fi
  local stamp="$VENV/.graphattn-$1-$(cat pyproject.toml "$0" | cksum | cut -d' ' -f1)"
  if [ ! -f "$stamp" ]; then
    "$py" -m pip install -q -e ".[$1]"
    touch "$stamp"
  fi
}

# Real example data from packages: the cortex meshes (PyPI wheel, read directly) and
# Fashion-MNIST (Debian package, unpacked into .cache/ without installing it).
setup_data() {
  local py="$VENV/bin/python"
  # --no-deps keeps brainspace's heavy vtk import chain out: we only read its files.
  "$py" -c 'import importlib.util as u, sys; sys.exit(u.find_spec("brainspace") is None)' \
    || "$py" -m pip install -q --no-deps brainspace==0.3.0
  local fm=.cache/fashion-mnist
  if [ ! -f /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz ] \
     && [ ! -f "$fm/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz" ]; then
    mkdir -p "$fm"
    ( cd "$fm" && { apt-get download dataset-fashion-mnist >/dev/null 2>&1 \
        || { [ "$(id -u)" = 0 ] && apt-get update -qq >/dev/null 2>&1 \
             && apt-get download dataset-fashion-mnist >/dev/null 2>&1; }; } \
      && dpkg -x dataset-fashion-mnist_*.deb . && rm -f dataset-fashion-mnist_*.deb ) \
      || echo "warning: could not fetch Fashion-MNIST (apt-get download dataset-fashion-mnist)" >&2
  fi
}

# jemalloc for the benchmarks' third allocator configuration (LD_PRELOAD in the case
# processes only): Debian's libjemalloc2, unpacked into .cache/jemalloc, never installed.
# Without it the benchmarks skip that configuration with a note.
setup_jemalloc() {
  local dir=.cache/jemalloc
  ls "$dir"/usr/lib/*/libjemalloc.so.2 >/dev/null 2>&1 && return 0
  mkdir -p "$dir"
  ( cd "$dir" && { apt-get download libjemalloc2 >/dev/null 2>&1 \
        || { [ "$(id -u)" = 0 ] && apt-get update -qq >/dev/null 2>&1 \
             && apt-get download libjemalloc2 >/dev/null 2>&1; }; } \
      && dpkg -x libjemalloc2_*.deb . && rm -f libjemalloc2_*.deb ) \
      || echo "note: could not fetch libjemalloc2 (apt-get download libjemalloc2);" \
              "the benchmarks will skip the jemalloc configuration" >&2
}

# Headless Chromium for the docs check: Debian's package, installed when we are root.
setup_browser() {
  command -v chromium >/dev/null 2>&1 && return 0
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq >/dev/null 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1 || true
  fi
  command -v chromium >/dev/null 2>&1 \
    || { echo "error: the docs check needs Debian's chromium (apt-get install chromium)" >&2; exit 1; }
}

# torch-scatter / torch-sparse exist on PyPI only as source: build them against the
# installed torch (no build isolation: their setup.py imports torch). pip's wheel
# cache makes this slow build one-time per machine. A build that fails or runs past
# SPARSE_BUILD_TIMEOUT seconds is reported and the optional configuration skipped.
setup_sparse() {
  local py="$VENV/bin/python"
  "$py" -c 'import torch_scatter, torch_sparse' >/dev/null 2>&1 && return 0
  "$py" -m pip install -q setuptools wheel ninja
  MAX_JOBS=${MAX_JOBS:-$(nproc)} timeout "${SPARSE_BUILD_TIMEOUT:-3000}" \
    "$py" -m pip install -q --no-build-isolation torch-scatter==2.1.2 torch-sparse==0.6.18
}

task=${1:-}
shift || true
case "$task" in
  test)
    setup test
    setup_data
    set +e
    GRAPHATTN_REQUIRE_DATA=1 "$VENV/bin/python" -m pytest tests -q "$@"
    rc=$?
    set -e
    # pytest's 5 means "no tests collected": a broken suite, not a pass.
    [ "$rc" -eq 5 ] && echo "no tests were collected" >&2
    exit "$rc"
    ;;
  test-sparse)
    VENV=${VENV_SPARSE:-.venv-sparse}
    setup test
    setup_data
    rc=0
    setup_sparse || rc=$?
    if [ "$rc" -ne 0 ]; then
      if [ "$rc" -eq 124 ]; then
        why="their build from source ran past SPARSE_BUILD_TIMEOUT=${SPARSE_BUILD_TIMEOUT:-3000} s"
      else
        why="their build from source failed (pip exit status $rc)"
      fi
      echo "SKIPPED: the optional torch-scatter/torch-sparse configuration was not tested," \
           "because $why" >&2
      exit 0
    fi
    GRAPHATTN_REQUIRE_DATA=1 "$VENV/bin/python" -m pytest tests -q "$@"
    ;;
  demo)
    setup demo
    setup_data
    exec "$VENV/bin/python" examples/demo.py "$@"
    ;;
  bench)
    setup test
    setup_jemalloc
    exec "$VENV/bin/python" benchmarks/run.py "$@"
    ;;
  docs)
    setup docs
    # -E: read every page again, so every tutorial snippet runs; -W: warnings are errors.
    rm -rf docs/_build/html docs/api/generated docs/_generated
    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 "$VENV/bin/python" -m sphinx -W --keep-going -E -q \
      -b html docs docs/_build/html
    echo "docs: built docs/_build/html/index.html"
    # The docs' own tests (API pages = __all__, packaging metadata, the runcode directive).
    OMP_NUM_THREADS=1 "$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/test_docs.py
    if [ "${1:-}" = "--check" ]; then
      setup_browser
      "$VENV/bin/python" .ci/check_docs.py docs/_build/html
    fi
    ;;
  package)
    setup test
    exec bash .ci/package_smoke.sh "$VENV/bin/python"
    ;;
  gpu)
    # No setup: a lent GPU machine has no registry to install from, and its bare python3
    # already holds torch, PyG, triton and pytest. GPU_PYTHON picks another interpreter
    # (the tests run the --dry-run rehearsal with the venv's).
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
    exec "${GPU_PYTHON:-python3}" benchmarks/gpu_check.py "$@"
    ;;
  *)
    echo "usage: ./tasks.sh {demo|test|test-sparse|bench|docs|package|gpu} [args]" >&2
    exit 2
    ;;
esac
