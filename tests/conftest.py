import os
import sys

import pytest
import torch

from graphattn.compiled_kernel import compile_kernels

# The examples are tutorials, not a package: make their modules importable in tests.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), 'examples'))


def require_data(fn, *args):
    """Load real example data; skip when absent, unless GRAPHATTN_REQUIRE_DATA=1 (CI)."""
    from datasets import MissingDataError
    try:
        return fn(*args)
    except MissingDataError as error:
        if os.environ.get('GRAPHATTN_REQUIRE_DATA') == '1':
            raise
        pytest.skip(str(error).splitlines()[0])


@pytest.fixture
def one_thread():
    """Run a test on one intra-op thread: for tests made of thousands of tiny ops, extra
    threads only add synchronisation (about 10x slower on a loaded 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def pytest_addoption(parser):
    parser.addoption(
        '--device', default='cpu',
        help="device of tests/test_cuda_parity.py, compared there with a CPU float64 "
             "reference: 'cpu' (the default, what CI runs) or 'cuda' / 'cuda:N'")


def _device_option(config) -> torch.device:
    name = config.getoption('--device')
    try:
        dev = torch.device(name)
    except RuntimeError as error:
        raise pytest.UsageError(f"--device {name!r}: {error}") from None
    if dev.type not in ('cpu', 'cuda'):
        raise pytest.UsageError(f"--device must be 'cpu' or 'cuda[:N]' (got {name!r})")
    return dev


def pytest_configure(config):
    _device_option(config)   # a wrong --device stops the run at once, not once per test


@pytest.fixture(scope='session')
def device(request) -> torch.device:
    """The device of ``--device``; the tests that take it skip, with the reason, where
    ``--device cuda`` is asked for and torch sees no GPU (rather than fail)."""
    dev = _device_option(request.config)
    if dev.type == 'cuda' and not torch.cuda.is_available():
        pytest.skip(f"--device {dev}: torch.cuda.is_available() is False (torch "
                    f"{torch.__version__}, built for CUDA {torch.version.cuda})")
    return dev


@pytest.fixture
def aot_eager_table_kernel(monkeypatch):
    """The compiled table kernel's two functions through ``aot_eager``, with a fresh Dynamo
    cache: the same traced graphs as inductor's, without its C++ build (about a minute per
    function on a CPU)."""
    from graphattn import compiled_neighbor_attention as cna
    torch._dynamo.reset()
    monkeypatch.setattr(cna, '_KERNELS', compile_kernels(cna._FUNCTIONS, 'aot_eager'))
    yield
    torch._dynamo.reset()
