import os
import sys

import pytest
import torch

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
